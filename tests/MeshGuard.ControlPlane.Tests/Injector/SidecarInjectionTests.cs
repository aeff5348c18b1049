using System.Text;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Common.Injection;

namespace MeshGuard.ControlPlane.Tests.Injector;

/// <summary>The injection webhook's answers to real admission.k8s.io/v1 AdmissionReview documents for Pod creation.</summary>
public sealed class SidecarInjectionTests
{
    private static readonly InjectionTemplate Template = new();

    private static JsonObject Review() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "testdata", "admission", "pod-create.json")))!.AsObject();

    private static JsonObject Pod(JsonObject review) => review["request"]!["object"]!.AsObject();

    /// <summary>The pod as the API server stores it after applying the webhook's patch.</summary>
    private static JsonObject Patched(JsonObject review, JsonObject response)
    {
        var answer = response["response"]!;
        Assert.Equal("JSONPatch", answer["patchType"]!.GetValue<string>());
        var patch = JsonNode.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(answer["patch"]!.GetValue<string>())))!.AsArray();
        var pod = Pod(review).DeepClone().AsObject();
        JsonPatch.Apply(pod, patch);
        return pod;
    }

    private static JsonObject Named(JsonNode? array, string name) =>
        array!.AsArray().Single(c => c!["name"]!.GetValue<string>() == name)!.AsObject();

    /// <summary>The review's answer admits the pod as it is; returns why it was left alone.</summary>
    private static string AdmittedUnchanged(JsonObject review)
    {
        var response = AdmissionReviews.Respond(review, Template, out var decision);
        Assert.False(decision.Inject);
        Assert.True(response["response"]!["allowed"]!.GetValue<bool>());
        Assert.Null(response["response"]!["patch"]);
        Assert.Null(response["response"]!["patchType"]);
        return decision.Reason;
    }

    private static List<string> Args(JsonObject container) => container["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();

    [Fact]
    public void APodCreationGetsTheSidecarTheRedirectInitContainerAndAProjectedTokenForMeshguard()
    {
        var review = Review();
        var response = AdmissionReviews.Respond(review, Template, out var decision);
        Assert.True(decision.Inject, decision.Reason);
        Assert.Equal("admission.k8s.io/v1", response["apiVersion"]!.GetValue<string>());
        Assert.Equal("AdmissionReview", response["kind"]!.GetValue<string>());
        Assert.Equal("0df28fbd-5f5f-11e8-bc74-36e6bb280816", response["response"]!["uid"]!.GetValue<string>());
        Assert.True(response["response"]!["allowed"]!.GetValue<bool>());

        var pod = Patched(review, response);
        var spec = pod["spec"]!;
        Assert.Equal(["orders", SidecarInjector.ProxyContainer], spec["containers"]!.AsArray().Select(c => c!["name"]!.GetValue<string>()));
        var proxy = Named(spec["containers"], SidecarInjector.ProxyContainer);
        var args = Args(proxy);
        Assert.Equal("orders", args[args.IndexOf("--service") + 1]);
        Assert.Equal("8080", args[args.IndexOf("--app-port") + 1]);
        Assert.Equal(1337, proxy["securityContext"]!["runAsUser"]!.GetValue<int>());
        Assert.True(proxy["securityContext"]!["runAsNonRoot"]!.GetValue<bool>());
        Assert.True(proxy["securityContext"]!["readOnlyRootFilesystem"]!.GetValue<bool>());
        Assert.Equal(15006, proxy["readinessProbe"]!["tcpSocket"]!["port"]!.GetValue<int>());
        Assert.NotNull(proxy["resources"]!["requests"]!["memory"]);

        var init = Named(spec["initContainers"], SidecarInjector.InitContainer);
        Assert.Equal(["redirect", "install"], Args(init).Take(2));
        Assert.Equal(["NET_ADMIN", "NET_RAW"], init["securityContext"]!["capabilities"]!["add"]!.AsArray().Select(c => c!.GetValue<string>()));

        // The pod's own volume stays; the token is projected for audience meshguard.
        Assert.NotNull(Named(spec["volumes"], "kube-api-access-8xk2p"));
        var token = Named(spec["volumes"], "meshguard-token")["projected"]!["sources"]![0]!["serviceAccountToken"]!;
        Assert.Equal("meshguard", token["audience"]!.GetValue<string>());
        Assert.Equal("injected", pod["metadata"]!["annotations"]![SidecarInjector.StatusAnnotation]!.GetValue<string>());
    }

    [Fact]
    public void AnInjectedPodGetsNoSecondPatch()
    {
        var review = Review();
        var injected = Patched(review, AdmissionReviews.Respond(review, Template, out _));
        review["request"]!["object"] = injected;
        Assert.Contains("already has a sidecar", AdmittedUnchanged(review), StringComparison.Ordinal);
    }

    [Fact]
    public void APodThatOptsOutIsAdmittedUnchanged()
    {
        var review = Review();
        Pod(review)["metadata"]!["annotations"] = new JsonObject { [SidecarInjector.InjectAnnotation] = "false" };
        Assert.Contains("opts out", AdmittedUnchanged(review), StringComparison.Ordinal);
    }

    [Fact]
    public void AnAppPortAnnotationAndExistingAnnotationsAreHonoured()
    {
        var review = Review();
        Pod(review)["metadata"]!["annotations"] = new JsonObject { [SidecarInjector.AppPortAnnotation] = "9090", ["team"] = "shop" };
        var pod = Patched(review, AdmissionReviews.Respond(review, Template, out _));
        var args = Args(Named(pod["spec"]!["containers"], SidecarInjector.ProxyContainer));
        Assert.Equal("9090", args[args.IndexOf("--app-port") + 1]);
        Assert.Equal("shop", pod["metadata"]!["annotations"]!["team"]!.GetValue<string>());
        Assert.Equal("injected", pod["metadata"]!["annotations"]![SidecarInjector.StatusAnnotation]!.GetValue<string>());
    }

    private static string? Env(JsonObject container, string name) =>
        container["env"]!.AsArray().SingleOrDefault(e => e!["name"]!.GetValue<string>() == name)?["value"]?.GetValue<string>();

    [Theory]
    [InlineData(null, "2")]
    [InlineData("1", "1")]
    [InlineData("8", "8")]
    [InlineData("64", "64")]
    [InlineData("0", "2")]
    [InlineData("65", "2")]
    [InlineData("-1", "2")]
    [InlineData("1.5", "2")]
    [InlineData("two", "2")]
    [InlineData("", "2")]
    public void TheSidecarIsSizedForTwoCoresUnlessThePodNamesAnotherCountFromOneTo64(string? annotated, string cores)
    {
        var review = Review();
        if (annotated is not null)
        {
            Pod(review)["metadata"]!["annotations"] = new JsonObject { [SidecarInjector.ProxyCpusAnnotation] = annotated };
        }
        var response = AdmissionReviews.Respond(review, Template, out var decision);
        Assert.True(decision.Inject, decision.Reason);
        Assert.EndsWith($"sized for {cores} cores", decision.Reason, StringComparison.Ordinal);
        var proxy = Named(Patched(review, response)["spec"]!["containers"], SidecarInjector.ProxyContainer);
        Assert.Equal(cores, Env(proxy, "DOTNET_PROCESSOR_COUNT"));
        // Sized, not throttled: the sidecar still gets no CPU limit.
        Assert.Null(proxy["resources"]!["limits"]!["cpu"]);
    }

    [Fact]
    public void AnnotationsThatAreNoStringsCountAsUnsetAndThePodIsStillInjected()
    {
        // What meshctl inject reads from YAML written without quotes; the API server itself admits only strings.
        var review = Review();
        Pod(review)["metadata"]!["annotations"] = new JsonObject
        {
            [SidecarInjector.AppPortAnnotation] = 9090,
            [SidecarInjector.ProxyCpusAnnotation] = 4,
            [SidecarInjector.InjectAnnotation] = false,
        };
        var response = AdmissionReviews.Respond(review, Template, out var decision);
        Assert.True(decision.Inject, decision.Reason);
        Assert.Equal("sidecar for service orders, app port 8080, sized for 2 cores", decision.Reason);
        var proxy = Named(Patched(review, response)["spec"]!["containers"], SidecarInjector.ProxyContainer);
        Assert.Equal("2", Env(proxy, "DOTNET_PROCESSOR_COUNT"));
    }

    [Fact]
    public void TheControlPlanesSidecarCountIsTheDefaultAndAnAnnotationStillWins()
    {
        var template = Template with { ProxyCpus = 4 };
        var review = Review();
        Assert.Equal("4", Env(Named(Patched(review, AdmissionReviews.Respond(review, template, out _))["spec"]!["containers"], SidecarInjector.ProxyContainer), "DOTNET_PROCESSOR_COUNT"));
        Pod(review)["metadata"]!["annotations"] = new JsonObject { [SidecarInjector.ProxyCpusAnnotation] = "1" };
        Assert.Equal("1", Env(Named(Patched(review, AdmissionReviews.Respond(review, template, out _))["spec"]!["containers"], SidecarInjector.ProxyContainer), "DOTNET_PROCESSOR_COUNT"));
    }

    [Theory]
    [InlineData("UPDATE", "Pod")]
    [InlineData("CREATE", "Service")]
    public void AnythingButAPodCreationIsAllowedWithoutAPatch(string operation, string kind)
    {
        var review = Review();
        review["request"]!["operation"] = operation;
        review["request"]!["kind"]!["kind"] = kind;
        Assert.Contains("not a Pod CREATE", AdmittedUnchanged(review), StringComparison.Ordinal);
    }

    [Fact]
    public void AHostNetworkPodIsLeftAlone()
    {
        var review = Review();
        Pod(review)["spec"]!["hostNetwork"] = true;
        Assert.Contains("host's network", AdmittedUnchanged(review), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"x\"}}")]
    [InlineData("{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}")]
    public void WhatIsNoV1AdmissionReviewIsRefused(string json) =>
        Assert.Throws<FormatException>(() => AdmissionReviews.Respond(JsonNode.Parse(json), Template, out _));
}
