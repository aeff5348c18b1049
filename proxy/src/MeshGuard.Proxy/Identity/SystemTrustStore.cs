using System.Collections;
using System.Runtime.InteropServices;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// Keeps the machine's public CA store out of the sidecar when nothing of it can use the store. Every peer the sidecar
/// checks (the control plane, other sidecars) is checked against the mesh's bundle alone, yet .NET on Linux reads the
/// system store (the CA file, then each hashed file of the CA directory: about 150 roots, twice) at a process's first
/// chain build, whatever the chain's trust mode. That first build is the attestation's, on the path to ready: 66 ms to
/// 150 ms of a sidecar's start here. So, before anything builds a chain, <c>SSL_CERT_FILE</c> and <c>SSL_CERT_DIR</c>
/// are pointed at <c>/dev/null</c> for this process, unless an OTLP endpoint is reached over TLS (an exporter may need
/// a public or corporate CA from the store, and then finds it where the operator said).
/// </summary>
internal static partial class SystemTrustStore
{
    /// <summary>Where both variables point when the store is kept out: an empty file, and no directory to list.</summary>
    internal const string Nowhere = "/dev/null";

    private static readonly string[] StoreVariables = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

    /// <summary>
    /// Why the store stays, or null when this process can do without it. Only an OTLP exporter over TLS may need it;
    /// where the store is (SSL_CERT_FILE, SSL_CERT_DIR, often set machine-wide) does not make anything else need it.
    /// </summary>
    internal static string? ReasonToKeep(IDictionary environment)
    {
        foreach (DictionaryEntry entry in environment)
        {
            // OTEL_EXPORTER_OTLP_ENDPOINT and the per-signal OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT.
            if (entry.Key is string name && name.StartsWith("OTEL_EXPORTER_OTLP", StringComparison.Ordinal) && name.EndsWith("ENDPOINT", StringComparison.Ordinal)
                && entry.Value is string { Length: > 0 } value && !value.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
            {
                return name + " is not plain http";
            }
        }
        return null;
    }

    /// <summary>What <see cref="KeepOutUnlessNeeded"/> did, for the start-up line: "off", or "kept (why)".</summary>
    internal static string Decision { get; private set; } = "kept (not examined)";

    /// <summary>
    /// Called first thing in Main, while no other thread of the program reads the environment. Returns what was done
    /// (also kept in <see cref="Decision"/>). The process's native environment is what OpenSSL and .NET's store loader read; .NET's own
    /// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach it on Unix, hence setenv.
    /// </summary>
    internal static string KeepOutUnlessNeeded() => Decision = Decide();

    private static string Decide()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "kept (not Linux)";
        }
        if (ReasonToKeep(Environment.GetEnvironmentVariables()) is { } reason)
        {
            return "kept (" + reason + ")";
        }
        try
        {
            foreach (var name in StoreVariables)
            {
                if (!SetNative(name, Nowhere))
                {
                    return "kept (setenv failed)";
                }
                Environment.SetEnvironmentVariable(name, Nowhere);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: the store is read as before, which costs only time.
            return "kept (" + e.GetType().Name + ")";
        }
        return "off";
    }

    private static bool SetNative(string name, string value)
    {
        var nativeName = Marshal.StringToCoTaskMemUTF8(name);
        var nativeValue = Marshal.StringToCoTaskMemUTF8(value);
        try
        {
            // setenv copies both strings.
            return SetEnv(nativeName, nativeValue, overwrite: 1) == 0;
        }
        finally
        {
            Marshal.FreeCoTaskMem(nativeName);
            Marshal.FreeCoTaskMem(nativeValue);
        }
    }

    [LibraryImport("libc.so.6", EntryPoint = "setenv")]
    private static partial int SetEnv(nint name, nint value, int overwrite);
}
