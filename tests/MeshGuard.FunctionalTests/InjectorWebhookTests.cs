using System.Text;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Common.Injection;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The control plane's injection webhook, called as the Kubernetes API server calls it: HTTPS to the
/// control plane's Service name (curl checks the certificate against the mesh bundle), a real
/// AdmissionReview for a Pod creation in, a JSON Patch that adds the sidecar out.
/// </summary>
[Collection(nameof(MeshCollection))]
[Trait("Subject", "ControlPlane")]
public sealed class InjectorWebhookTests(MeshFixture mesh)
{
    private static string Review => Path.Combine(AppContext.BaseDirectory, "testdata", "admission", "pod-create.json");

    private async Task<(int Exit, string Output)> CurlAsync(params string[] extra)
    {
        var port = mesh.Mesh.ControlPlane!.WebhookPort;
        return await ExternalProcess.RunAsync("curl", [
            "-sS", "--max-time", "10", "--cacert", mesh.Mesh.Data.TrustBundle,
            "--resolve", $"meshguard-cp.meshguard.svc:{port}:127.0.0.1",
            "-H", "Content-Type: application/json", "-w", "\n%{http_code}",
            .. extra,
            $"https://meshguard-cp.meshguard.svc:{port}/inject"]);
    }

    [Fact]
    public async Task APodCreationReviewOverVerifiedTlsGetsAPatchThatAddsTheSidecar()
    {
        var (exit, output) = await CurlAsync("--data-binary", "@" + Review);
        Assert.True(exit == 0, output);
        var lines = output.TrimEnd().Split('\n');
        Assert.Equal("200", lines[^1]);
        var answer = JsonNode.Parse(string.Join('\n', lines[..^1]))!["response"]!;
        Assert.Equal("0df28fbd-5f5f-11e8-bc74-36e6bb280816", answer["uid"]!.GetValue<string>());
        Assert.True(answer["allowed"]!.GetValue<bool>());
        var patch = JsonNode.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(answer["patch"]!.GetValue<string>())))!.AsArray();
        var pod = JsonNode.Parse(File.ReadAllText(Review))!["request"]!["object"]!;
        JsonPatch.Apply(pod, patch);
        Assert.Contains(pod["spec"]!["containers"]!.AsArray(), c => c!["name"]!.GetValue<string>() == SidecarInjector.ProxyContainer);
    }

    [Fact]
    public async Task ADocumentThatIsNoAdmissionReviewGets400AndTheControlPlaneGoesOn()
    {
        var (exit, output) = await CurlAsync("--data-binary", "{\"kind\":\"Pod\"}");
        Assert.True(exit == 0, output);
        Assert.EndsWith("\n400", output.TrimEnd(), StringComparison.Ordinal);
        Assert.Contains("not an admission.k8s.io/v1 AdmissionReview", output, StringComparison.Ordinal);
        var (again, second) = await CurlAsync("--data-binary", "@" + Review);
        Assert.True(again == 0, second);
        Assert.EndsWith("\n200", second.TrimEnd(), StringComparison.Ordinal);
    }
}
