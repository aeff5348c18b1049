using System.Reflection;

namespace MeshGuard.ControlPlane.Common.Injection;

/// <summary>
/// The images <c>./meshguard.sh images</c> builds, tagged with the release these programs belong to (the
/// <c>Version</c> of Directory.Build.props, which manifests/ names too): an injector of release X injects the
/// sidecar of release X, never a moving <c>latest</c>.
/// </summary>
public static class MeshGuardImages
{
    /// <summary>The release, from the informational version without the commit the SDK appends after '+'.</summary>
    public static string Release { get; } = ReadRelease();

    public static string Proxy => Of("proxy");

    public static string ProxyInit => Of("proxy-init");

    public static string ControlPlane => Of("control-plane");

    public static string Sample => Of("sample");

    /// <summary>The image build/images/NAME/Containerfile makes, as this release tags it.</summary>
    public static string Of(string name) => $"meshguard/{name}:{Release}";

    private static string ReadRelease()
    {
        var version = typeof(MeshGuardImages).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? version : version[..plus];
    }
}
