using System.Globalization;
using System.Text.Json.Nodes;

namespace MeshGuard.ControlPlane.Common.Injection;

/// <summary>
/// Decides whether a pod gets a sidecar and builds the JSON Patch (RFC 6902) that adds it: the
/// <c>meshguard-init</c> init container that installs the traffic redirect, the <c>meshguard-proxy</c>
/// container, the projected service-account token it attests with, its state and bundle volumes, and the
/// <c>meshguard.io/status</c> annotation that makes injection idempotent. Pure: the webhook and
/// <c>meshctl inject</c> share it.
/// </summary>
public static class SidecarInjector
{
    public const string ProxyContainer = "meshguard-proxy";
    public const string InitContainer = "meshguard-init";

    /// <summary>Set to "false" on a pod (or its template) to opt out, as <c>sidecar.istio.io/inject</c>.</summary>
    public const string InjectAnnotation = "meshguard.io/inject";

    /// <summary>Set on every injected pod.</summary>
    public const string StatusAnnotation = "meshguard.io/status";

    /// <summary>The app's port, when the pod's first container declares none or another one is meant.</summary>
    public const string AppPortAnnotation = "meshguard.io/app-port";

    /// <summary>
    /// The cores the sidecar sizes itself for (1 to <see cref="MaxProxyCpus"/>), as <c>proxy.istio.io/config</c>'s
    /// concurrency; passed as <c>DOTNET_PROCESSOR_COUNT</c>. Any other value leaves the template's count.
    /// </summary>
    public const string ProxyCpusAnnotation = "meshguard.io/proxy-cpus";

    public const int MaxProxyCpus = 64;

    private const string TokenPath = "/var/run/secrets/meshguard";
    private const string StatePath = "/var/run/meshguard/state";
    private const string BundlePath = "/var/run/meshguard/bundle";

    /// <summary>The patch for <paramref name="pod"/>, or none with the reason it is left alone.</summary>
    public static InjectionDecision Decide(JsonObject pod, InjectionTemplate template)
    {
        var metadata = pod["metadata"] as JsonObject;
        var annotations = metadata?["annotations"] as JsonObject;
        var spec = pod["spec"] as JsonObject;
        if (spec is null)
        {
            return InjectionDecision.Skip("the pod has no spec");
        }
        if (string.Equals(Annotation(annotations, InjectAnnotation), "false", StringComparison.OrdinalIgnoreCase))
        {
            return InjectionDecision.Skip($"the pod opts out ({InjectAnnotation}: \"false\")");
        }
        if (annotations?[StatusAnnotation] is not null || HasContainer(spec["containers"], ProxyContainer) || HasContainer(spec["initContainers"], InitContainer))
        {
            return InjectionDecision.Skip("the pod already has a sidecar");
        }
        if (spec["hostNetwork"]?.GetValueKind() == System.Text.Json.JsonValueKind.True)
        {
            return InjectionDecision.Skip("the pod uses the host's network: a redirect would capture the node's traffic");
        }

        var serviceAccount = spec["serviceAccountName"]?.GetValue<string>() ?? "default";
        var labels = metadata?["labels"] as JsonObject;
        var service = labels?["app.kubernetes.io/name"]?.GetValue<string>() ?? labels?["app"]?.GetValue<string>() ?? serviceAccount;
        var appPort = AppPort(annotations, spec, template);
        var cpus = ProxyCpus(annotations, template);

        var patch = new JsonArray();
        AddToArray(patch, spec, "initContainers", InitContainerSpec(template));
        AddToArray(patch, spec, "containers", ProxyContainerSpec(template, service, appPort, cpus));
        AddToArray(patch, spec, "volumes",
            new JsonObject
            {
                ["name"] = "meshguard-token",
                ["projected"] = new JsonObject
                {
                    ["sources"] = new JsonArray(new JsonObject
                    {
                        ["serviceAccountToken"] = new JsonObject { ["audience"] = template.TokenAudience, ["expirationSeconds"] = 3600, ["path"] = "token" },
                    }),
                },
            },
            new JsonObject { ["name"] = "meshguard-state", ["emptyDir"] = new JsonObject { ["medium"] = "Memory" } },
            new JsonObject { ["name"] = "meshguard-bundle", ["configMap"] = new JsonObject { ["name"] = template.BundleConfigMap } });
        if (metadata?["annotations"] is JsonObject)
        {
            patch.Add((JsonNode)Op("add", "/metadata/annotations/" + Escape(StatusAnnotation), "injected"));
        }
        else
        {
            patch.Add((JsonNode)Op("add", metadata is null ? "/metadata" : "/metadata/annotations",
                metadata is null
                    ? new JsonObject { ["annotations"] = new JsonObject { [StatusAnnotation] = "injected" } }
                    : new JsonObject { [StatusAnnotation] = "injected" }));
        }
        return new InjectionDecision(true, $"sidecar for service {service}, app port {appPort}, sized for {cpus} cores", patch);
    }

    private static int AppPort(JsonObject? annotations, JsonObject spec, InjectionTemplate template)
    {
        if (Annotation(annotations, AppPortAnnotation) is { } text
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var annotated) && annotated is > 0 and < 65536)
        {
            return annotated;
        }
        if (spec["containers"] is JsonArray { Count: > 0 } containers && containers[0]?["ports"] is JsonArray { Count: > 0 } ports
            && ports[0]?["containerPort"] is JsonValue declared && declared.TryGetValue<int>(out var port) && port is > 0 and < 65536)
        {
            return port;
        }
        return template.DefaultAppPort;
    }

    /// <summary>
    /// An annotation's text, or null when it is absent or not a string. The API server admits only strings, but
    /// <c>meshctl inject</c> reads YAML as written, where <c>meshguard.io/app-port: 9090</c> is a number: such a value
    /// counts as unset, as any other unusable one does, instead of failing the whole run.
    /// </summary>
    private static string? Annotation(JsonObject? annotations, string name) =>
        annotations?[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static int ProxyCpus(JsonObject? annotations, InjectionTemplate template) =>
        Annotation(annotations, ProxyCpusAnnotation) is { } text
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var annotated) && annotated is >= 1 and <= MaxProxyCpus
            ? annotated
            : template.ProxyCpus;

    /// <summary>What the init container runs: the pod's redirect rules for the template's uid and ports (also what a pod outside Kubernetes runs first).</summary>
    public static string[] InitArguments(InjectionTemplate t) =>
        ["redirect", "install", "--proxy-uid", Text(t.ProxyUid), "--inbound-port", Text(t.InboundPort),
            "--outbound-port", Text(t.OutboundPort), "--exclude-inbound-ports", $"{t.AdminPort},{t.MetricsPort}"];

    private static JsonObject InitContainerSpec(InjectionTemplate t) => new()
    {
        ["name"] = InitContainer,
        ["image"] = t.InitImage,
        ["args"] = Strings(InitArguments(t)),
        ["resources"] = new JsonObject
        {
            ["requests"] = new JsonObject { ["cpu"] = "10m", ["memory"] = "16Mi" },
            ["limits"] = new JsonObject { ["memory"] = "64Mi" },
        },
        // Writing iptables rules needs NET_ADMIN and NET_RAW, as root, once; nothing else.
        ["securityContext"] = new JsonObject
        {
            ["runAsUser"] = 0,
            ["runAsNonRoot"] = false,
            ["allowPrivilegeEscalation"] = false,
            ["readOnlyRootFilesystem"] = true,
            ["capabilities"] = new JsonObject { ["add"] = Strings("NET_ADMIN", "NET_RAW"), ["drop"] = Strings("ALL") },
        },
    };

    private static JsonObject ProxyContainerSpec(InjectionTemplate t, string service, int appPort, int cpus) => new()
    {
        ["name"] = ProxyContainer,
        ["image"] = t.Image,
        ["args"] = Strings(
            "--cp", t.ControlPlane,
            "--cp-bundle", BundlePath + "/bundle.pem",
            "--service", service,
            "--app-port", Text(appPort),
            "--inbound-address", "0.0.0.0",
            "--state-dir", StatePath),
        ["env"] = new JsonArray(
            new JsonObject { ["name"] = "MESHGUARD_SA_TOKEN_FILE", ["value"] = TokenPath + "/token" },
            FieldRef("POD_NAME", "metadata.name"),
            FieldRef("POD_NAMESPACE", "metadata.namespace"),
            FieldRef("POD_IP", "status.podIP"),
            new JsonObject { ["name"] = "MESHGUARD_ADVERTISE_ADDRESS", ["value"] = $"$(POD_IP):{t.InboundPort}" },
            // The runtime reads it before anything runs: thread pool and socket engines sized for the sidecar's share,
            // not for the node (with a CPU limit it would read the limit, but the sidecar gets none: see resources).
            new JsonObject { ["name"] = "DOTNET_PROCESSOR_COUNT", ["value"] = Text(cpus) }),
        ["ports"] = new JsonArray(
            new JsonObject { ["name"] = "meshguard-in", ["containerPort"] = t.InboundPort, ["protocol"] = "TCP" }),
        // The inbound port opens only once the sidecar has its SVID: the readiness signal until a health port exists.
        ["readinessProbe"] = new JsonObject
        {
            ["tcpSocket"] = new JsonObject { ["port"] = t.InboundPort },
            ["periodSeconds"] = 2,
            ["failureThreshold"] = 30,
        },
        ["resources"] = new JsonObject
        {
            ["requests"] = new JsonObject { ["cpu"] = t.CpuRequest, ["memory"] = t.MemoryRequest },
            ["limits"] = new JsonObject { ["memory"] = t.MemoryLimit },
        },
        ["securityContext"] = new JsonObject
        {
            ["runAsUser"] = t.ProxyUid,
            ["runAsGroup"] = t.ProxyUid,
            ["runAsNonRoot"] = true,
            ["allowPrivilegeEscalation"] = false,
            ["readOnlyRootFilesystem"] = true,
            ["capabilities"] = new JsonObject { ["drop"] = Strings("ALL") },
        },
        ["volumeMounts"] = new JsonArray(
            new JsonObject { ["name"] = "meshguard-token", ["mountPath"] = TokenPath, ["readOnly"] = true },
            new JsonObject { ["name"] = "meshguard-state", ["mountPath"] = StatePath },
            new JsonObject { ["name"] = "meshguard-bundle", ["mountPath"] = BundlePath, ["readOnly"] = true }),
    };

    private static void AddToArray(JsonArray patch, JsonObject spec, string field, params JsonObject[] items)
    {
        if (spec[field] is JsonArray)
        {
            foreach (var item in items)
            {
                patch.Add((JsonNode)Op("add", $"/spec/{field}/-", item));
            }
            return;
        }
        var array = new JsonArray();
        foreach (var item in items)
        {
            array.Add((JsonNode)item);
        }
        patch.Add((JsonNode)Op("add", $"/spec/{field}", array));
    }

    private static bool HasContainer(JsonNode? containers, string name)
    {
        if (containers is not JsonArray array)
        {
            return false;
        }
        foreach (var container in array)
        {
            if (container?["name"]?.GetValue<string>() == name)
            {
                return true;
            }
        }
        return false;
    }

    private static JsonObject Op(string op, string path, JsonNode value) => new() { ["op"] = op, ["path"] = path, ["value"] = value };

    private static JsonObject FieldRef(string name, string path) =>
        new() { ["name"] = name, ["valueFrom"] = new JsonObject { ["fieldRef"] = new JsonObject { ["fieldPath"] = path } } };

    private static JsonArray Strings(params string[] values)
    {
        var array = new JsonArray();
        foreach (var value in values)
        {
            array.Add((JsonNode?)JsonValue.Create(value));
        }
        return array;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>RFC 6901: '~' and '/' in a key are written "~0" and "~1".</summary>
    private static string Escape(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);
}

/// <summary>Whether a pod gets a sidecar, why, and the patch that adds it (empty when it does not).</summary>
public sealed record InjectionDecision(bool Inject, string Reason, JsonArray Patch)
{
    public static InjectionDecision Skip(string reason) => new(false, reason, []);
}
