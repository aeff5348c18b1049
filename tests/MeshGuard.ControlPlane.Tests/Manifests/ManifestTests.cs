using System.Text.Json.Nodes;
using MeshGuard.Ctl.Commands;
using MeshGuard.Policy.Parsing;
using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests.Manifests;

/// <summary>
/// manifests/ as <c>kubectl kustomize</c> builds it: every object is read into KubernetesClient's typed model of
/// its API version with unknown fields refused, and every AccessPolicy (the example's and samples/) passes both
/// the CRD's schema and the policy parser that <c>meshctl policy lint</c> runs. Schema and parser agree on
/// documents that either refuses.
/// </summary>
public sealed class ManifestTests
{
    private static async Task<string> KustomizeAsync(string directory)
    {
        var (exit, output) = await ExternalProcess.RunAsync("kubectl", ["kustomize", Path.Combine(RepositoryRoot.Path, directory)]);
        Assert.True(exit == 0, $"kubectl kustomize {directory} failed: {output}");
        return output;
    }

    /// <summary>The documents of a multi-document YAML stream as kubectl writes it.</summary>
    private static List<string> Documents(string yaml) =>
        [.. yaml.Split("\n---\n").Select(d => d.Trim()).Where(d => d.Length > 0 && d != "---")];

    private static string KindOf(string document) =>
        document.Split('\n').First(l => l.StartsWith("kind: ", StringComparison.Ordinal))["kind: ".Length..].Trim();

    private static JsonNode Crd() =>
        ManifestYaml.Read(new StringReader(File.ReadAllText(Path.Combine(RepositoryRoot.Path, "manifests", "crd", "accesspolicy.yaml"))))[0];

    private static JsonNode AccessPolicySchema() =>
        Crd()["spec"]!["versions"]!.AsArray().Single(v => (string?)v!["name"] == "v1alpha1")!["schema"]!["openAPIV3Schema"]!;

    /// <summary>Typed and strict: an unknown or misspelled field is an exception, as kubectl's strict validation makes it an error.</summary>
    private static object ReadTyped(string document)
    {
        var objects = k8s.KubernetesYaml.LoadAllFromString(document, typeMap: null, strict: true);
        return Assert.Single(objects);
    }

    [Theory]
    [InlineData("manifests")]
    [InlineData("manifests/example")]
    public async Task EveryObjectIsValidForTheModelOfItsApiVersion(string directory)
    {
        var documents = Documents(await KustomizeAsync(directory));

        Assert.NotEmpty(documents);
        foreach (var document in documents.Where(d => KindOf(d) != "AccessPolicy"))
        {
            var typed = ReadTyped(document);
            Assert.IsAssignableFrom<k8s.IKubernetesObject>(typed);
        }
    }

    [Fact]
    public async Task TheInstallHasEveryPieceAPlatformTeamNeeds()
    {
        var documents = Documents(await KustomizeAsync("manifests"));
        T Only<T>(string kind) => (T)ReadTyped(documents.Single(d => KindOf(d) == kind));
        var kinds = documents.Select(KindOf).ToList();

        Assert.Equal(
            ["ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding", "ConfigMap", "CustomResourceDefinition", "Deployment", "MutatingWebhookConfiguration", "Namespace",
             "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"],
            kinds.Order(StringComparer.Ordinal));
        var deployment = Only<k8s.Models.V1Deployment>("Deployment");
        var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
        Assert.True(deployment.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
        Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
        Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
        Assert.NotNull(container.ReadinessProbe);
        Assert.NotNull(container.LivenessProbe);
        Assert.NotNull(container.Resources.Limits["memory"]);
        Assert.Contains("--policy-source=kubernetes", container.Args);
        Assert.Contains("--endpoint-source=kubernetes", container.Args);
        Assert.Contains("--revocation-source=kubernetes", container.Args);
        Assert.Contains("--publish-bundle", container.Args);
        Assert.True(deployment.Spec.Replicas >= 2);
        var webhook = Only<k8s.Models.V1MutatingWebhookConfiguration>("MutatingWebhookConfiguration");
        var hook = Assert.Single(webhook.Webhooks);
        Assert.Equal("Ignore", hook.FailurePolicy);
        Assert.Equal("enabled", hook.NamespaceSelector.MatchLabels["meshguard.io/inject"]);
        Assert.Equal(15017, hook.ClientConfig.Service.Port);
        Assert.Equal("/inject", hook.ClientConfig.Service.Path);
        var role = Only<k8s.Models.V1ClusterRole>("ClusterRole");
        // Read-only but for the bundle ConfigMap: nothing may delete, patch or write anything else.
        Assert.DoesNotContain(role.Rules, rule => rule.Verbs.Intersect(["delete", "deletecollection", "patch", "*"]).Any());
        Assert.All(role.Rules.Where(r => r.Verbs.Contains("update")), rule => Assert.Equal(["meshguard-ca-bundle"], rule.ResourceNames));
        Assert.All(role.Rules.Where(r => r.Verbs.Intersect(["create", "update"]).Any()), rule => Assert.Equal(["configmaps"], rule.Resources));
        Assert.Equal(["accesspolicies", "configmaps", "configmaps", "namespaces", "pods"], role.Rules.SelectMany(r => r.Resources).Order(StringComparer.Ordinal));
        var local = Only<k8s.Models.V1Role>("Role");
        Assert.Equal("meshguard", local.Metadata.NamespaceProperty);
        Assert.Equal(["configmaps"], Assert.Single(local.Rules).Resources);
        Assert.Equal(["get", "list", "watch"], local.Rules[0].Verbs);
    }

    [Fact]
    public async Task EveryImageTheManifestsAndTheInjectorNameIsOneTheImagesScriptBuildsForThisRelease()
    {
        var props = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "Directory.Build.props"));
        var release = System.Text.RegularExpressions.Regex.Match(props, "<Version>([^<]+)</Version>").Groups[1].Value;
        // The images build/images/images.sh makes, each named by its `image NAME ...` line.
        var built = File.ReadAllLines(Path.Combine(RepositoryRoot.Path, "build", "images", "images.sh"))
            .Where(l => l.StartsWith("image ", StringComparison.Ordinal))
            .Select(l => $"meshguard/{l.Split(' ')[1]}:{release}").ToHashSet();
        var named = new List<string>();
        foreach (var directory in new[] { "manifests", "manifests/example" })
        {
            named.AddRange((await KustomizeAsync(directory)).Split('\n').Select(l => l.Trim())
                .Where(l => l.StartsWith("image: ", StringComparison.Ordinal)).Select(l => l["image: ".Length..].Trim()));
        }
        var template = new MeshGuard.ControlPlane.Common.Injection.InjectionTemplate();

        Assert.Equal(MeshGuard.ControlPlane.Common.Injection.MeshGuardImages.Release, release);
        Assert.Equal(5, built.Count);
        Assert.Contains($"meshguard/control-plane:{release}", named);
        Assert.Contains($"meshguard/sample:{release}", named);
        Assert.All(named.Append(template.Image).Append(template.InitImage), image => Assert.Contains(image, built));
    }

    [Fact]
    public void AManifestWithAMisspelledFieldIsRefused()
    {
        const string Document = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: orders, namespace: shop }
            spec:
              replica: 2
              selector: { matchLabels: { app: orders } }
              template:
                metadata: { labels: { app: orders } }
                spec:
                  containers: [{ name: orders, image: shop/orders:1 }]
            """;

        Assert.ThrowsAny<Exception>(() => ReadTyped(Document));
    }

    [Fact]
    public async Task EveryExamplePolicyPassesTheCrdSchemaAndTheLinter()
    {
        var schema = AccessPolicySchema();
        var examples = new List<(string File, string Yaml)>();
        foreach (var document in Documents(await KustomizeAsync("manifests/example")).Where(d => KindOf(d) == "AccessPolicy"))
        {
            examples.Add(("manifests/example", document));
        }
        foreach (var file in Directory.GetFiles(Path.Combine(RepositoryRoot.Path, "samples", "policies"), "*.yaml"))
        {
            examples.AddRange(Documents("\n" + File.ReadAllText(file) + "\n").Select(d => (Path.GetFileName(file), d)));
        }

        Assert.True(examples.Count >= 5, $"only {examples.Count} example policies found");
        foreach (var (file, yaml) in examples)
        {
            var lint = PolicyParser.Parse(yaml, file);
            Assert.True(lint.IsValid, string.Join('\n', lint.Errors));
            var errors = StructuralSchema.Validate(ManifestYaml.Read(new StringReader(yaml))[0], schema);
            Assert.True(errors.Count == 0, $"{file}: {string.Join("; ", errors)}");
        }
    }

    private const string ValidPolicy = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          mode: audit
          rules:
            - name: frontend-orders
              from:
                - identity: spiffe://mesh.local/ns/shop/sa/frontend
                - namespace: ops
              to:
                - ports: [8080]
                  methods: [GET, POST]
                  paths: ["/orders", "/orders/*", "*"]
              when:
                - header: x-tenant
                  values: [blue]
        """;

    [Theory]
    [InlineData("action: allow", "action: permit")]
    [InlineData("mode: audit", "mode: dry-run")]
    [InlineData("methods: [GET, POST]", "methods: [GET, get]")]
    [InlineData("ports: [8080]", "ports: [70000]")]
    [InlineData("- namespace: ops", "- { namespace: ops, identity: spiffe://mesh.local/ns/ops/sa/x }")]
    [InlineData("- namespace: ops", "- {}")]
    [InlineData("paths: [\"/orders\", \"/orders/*\", \"*\"]", "paths: [\"orders\"]")]
    [InlineData("- header: x-tenant", "- header: \"x tenant\"")]
    [InlineData("values: [blue]", "values: []")]
    [InlineData("selector: { serviceAccount: orders }", "selector: { serviceAccount: Orders }")]
    [InlineData("selector: { serviceAccount: orders }", "selector: { app: orders }")]
    [InlineData("action: allow", "action: allow\n  priority: 1")]
    [InlineData("- identity: spiffe://mesh.local/ns/shop/sa/frontend", "- identity: https://mesh.local/ns/shop/sa/frontend")]
    public void SchemaAndLinterRefuseTheSameDocuments(string valid, string invalid)
    {
        Assert.True(PolicyParser.Parse(ValidPolicy, "valid.yaml").IsValid);
        Assert.Empty(StructuralSchema.Validate(ManifestYaml.Read(new StringReader(ValidPolicy))[0], AccessPolicySchema()));
        Assert.Contains(valid, ValidPolicy, StringComparison.Ordinal);
        var yaml = ValidPolicy.Replace(valid, invalid, StringComparison.Ordinal);

        var lint = PolicyParser.Parse(yaml, "invalid.yaml");
        var schemaErrors = StructuralSchema.Validate(ManifestYaml.Read(new StringReader(yaml))[0], AccessPolicySchema());

        Assert.False(lint.IsValid, $"the linter accepted: {invalid}");
        Assert.True(schemaErrors.Count > 0, $"the CRD schema accepted: {invalid}");
    }
}
