using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary><c>meshctl inject -f</c>: the webhook's change applied to a manifest file, offline.</summary>
[Trait("Subject", "ControlPlane")]
public sealed class MeshctlInjectTests : IDisposable
{
    private const string Manifest = """
        apiVersion: v1
        kind: Service
        metadata:
          name: orders
          namespace: shop
        spec:
          selector: { app: orders }
          ports:
            - port: 80
              targetPort: 8080
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: orders
          namespace: shop
        spec:
          replicas: 2
          selector:
            matchLabels: { app: orders }
          template:
            metadata:
              labels: { app: orders }
              annotations:
                prometheus.io/port: "9102"
            spec:
              serviceAccountName: orders
              containers:
                - name: orders
                  image: registry.example/shop/orders:1.4.2
                  ports:
                    - containerPort: 8080
                  env:
                    - name: FEATURE_ON
                      value: "true"
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: debug
          namespace: shop
          annotations:
            meshguard.io/inject: "false"
        spec:
          containers:
            - name: shell
              image: registry.example/tools/shell:1
        """;

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task APodTemplateGetsTheSidecarQuotedStringsStayStringsAndASecondRunChangesNothing()
    {
        MeshBinaries.Ensure();
        var input = Path.Combine(_temp.Path, "deploy.yaml");
        var injected = Path.Combine(_temp.Path, "injected.yaml");
        var again = Path.Combine(_temp.Path, "again.yaml");
        await File.WriteAllTextAsync(input, Manifest);

        var (exit, output) = await Cli.RunAsync("meshctl", "inject", "-f", input, "-o", injected);
        Assert.True(exit == 0, output);
        Assert.Contains("Deployment orders: injected (sidecar for service orders, app port 8080, sized for 2 cores)", output, StringComparison.Ordinal);
        Assert.Contains("Pod debug: unchanged (the pod opts out", output, StringComparison.Ordinal);
        var yaml = await File.ReadAllTextAsync(injected);
        Assert.Contains("- name: meshguard-proxy", yaml, StringComparison.Ordinal);
        Assert.Contains("- name: meshguard-init", yaml, StringComparison.Ordinal);
        Assert.Contains("audience: meshguard", yaml, StringComparison.Ordinal);
        Assert.Contains("meshguard.io/status: injected", yaml, StringComparison.Ordinal);
        // Types survive the round trip: numbers stay numbers, quoted strings stay strings.
        Assert.Contains("- containerPort: 8080\n", yaml, StringComparison.Ordinal);
        Assert.Contains("value: \"true\"", yaml, StringComparison.Ordinal);
        Assert.Contains("prometheus.io/port: \"9102\"", yaml, StringComparison.Ordinal);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(yaml, "name: meshguard-proxy"));

        (exit, output) = await Cli.RunAsync("meshctl", "inject", "-f", injected, "-o", again);
        Assert.True(exit == 0, output);
        Assert.Contains("Deployment orders: unchanged (the pod already has a sidecar)", output, StringComparison.Ordinal);
        Assert.Equal(yaml, await File.ReadAllTextAsync(again));
    }

    [Fact]
    public async Task SidecarCpusSetsTheCoresTheInjectedSidecarSizesItselfForAsAQuotedEnvValue()
    {
        MeshBinaries.Ensure();
        var input = Path.Combine(_temp.Path, "deploy.yaml");
        await File.WriteAllTextAsync(input, Manifest);

        var (exit, output) = await Cli.RunAsync("meshctl", "inject", "-f", input, "--sidecar-cpus", "3");
        Assert.True(exit == 0, output);
        Assert.Contains("Deployment orders: injected (sidecar for service orders, app port 8080, sized for 3 cores)", output, StringComparison.Ordinal);
        // An env value must be a string for the API server: the count stays quoted in the YAML.
        Assert.Matches(@"- name: DOTNET_PROCESSOR_COUNT\n\s+value: ""3""\n", output);

        (exit, output) = await Cli.RunAsync("meshctl", "inject", "-f", input, "--sidecar-cpus", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--sidecar-cpus must be from 1 to 64", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AManifestThatIsNoYamlIsRefusedWithItsLine()
    {
        MeshBinaries.Ensure();
        var input = Path.Combine(_temp.Path, "broken.yaml");
        await File.WriteAllTextAsync(input, "kind: Pod\nmetadata:\n  name: [unclosed\n");
        var (exit, output) = await Cli.RunAsync("meshctl", "inject", "-f", input);
        Assert.NotEqual(0, exit);
        Assert.Contains($"{input}:", output, StringComparison.Ordinal);
    }
    [Fact]
    public async Task InjectedInitContainerCommandIsOneRedirectInstallAccepts()
    {
        MeshBinaries.Ensure();
        var pod = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"orders","namespace":"shop"},
             "spec":{"serviceAccountName":"orders","containers":[{"name":"orders","image":"shop/orders:1","ports":[{"containerPort":8080}]}]}}
            """)!;
        var decision = MeshGuard.ControlPlane.Common.Injection.SidecarInjector.Decide(pod, new MeshGuard.ControlPlane.Common.Injection.InjectionTemplate());
        MeshGuard.ControlPlane.Common.Injection.JsonPatch.Apply(pod, decision.Patch);
        var init = pod["spec"]!["initContainers"]!.AsArray().Single(c => (string?)c!["name"] == "meshguard-init")!;
        var arguments = init["args"]!.AsArray().Select(a => (string)a!).ToArray();

        var (exit, output) = await Cli.RunAsync("meshguard-proxy", [.. arguments, "--dry-run"]);

        Assert.True(exit == 0, output);
        Assert.Contains("-A MESHGUARD_OUTPUT -m owner --uid-owner 1337 -j RETURN", output, StringComparison.Ordinal);
        Assert.Contains("-A MESHGUARD_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006", output, StringComparison.Ordinal);
        Assert.Contains("-A MESHGUARD_REDIRECT -p tcp -j REDIRECT --to-ports 15001", output, StringComparison.Ordinal);
        Assert.Contains("-A MESHGUARD_INBOUND -p tcp --dport 15020 -j RETURN", output, StringComparison.Ordinal);
    }
}
