using System.CommandLine;
using System.Text.Json.Nodes;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.Injection;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>meshctl inject -f deploy.yaml</c>: the webhook's change, offline (as <c>istioctl kube-inject</c>). Every
/// Pod, and every pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob in the
/// file, gets exactly the patch the control plane's webhook would give it; other documents pass unchanged.
/// </summary>
internal static class InjectCommand
{
    public static Command Create()
    {
        var file = CliOption.Text("-f", "manifest file (YAML, several documents allowed; - for standard input)");
        var output = CliOption.Text("-o", "where to write the result (default: standard output)");
        var image = CliOption.Text("--image", "the sidecar image", new InjectionTemplate().Image);
        var initImage = CliOption.Text("--init-image", "the init container's image (the redirect rules)", new InjectionTemplate().InitImage);
        var cp = CliOption.Text("--cp", "the control plane's bootstrap URL as pods reach it", new InjectionTemplate().ControlPlane);
        var cpus = CliOption.Number("--sidecar-cpus", $"the cores a sidecar sizes its threads for (1-{SidecarInjector.MaxProxyCpus}), unless its pod's {SidecarInjector.ProxyCpusAnnotation} says otherwise",
            new InjectionTemplate().ProxyCpus);
        var inject = new Command("inject", "add the MeshGuard sidecar to the pods of a manifest, as the injection webhook does") { file, output, image, initImage, cp, cpus };
        inject.SetAction(parse => Cli.Run(() =>
        {
            var path = CliOption.Required(parse, file);
            var template = new InjectionTemplate
            {
                Image = parse.GetValue(image)!,
                InitImage = parse.GetValue(initImage)!,
                ControlPlane = parse.GetValue(cp)!,
                ProxyCpus = CliOption.InRange(parse, cpus, 1, SidecarInjector.MaxProxyCpus),
            };
            List<JsonNode> documents;
            using (var reader = path == "-" ? Console.In : new StreamReader(path))
            {
                try
                {
                    documents = ManifestYaml.Read(reader);
                }
                catch (YamlDotNet.Core.YamlException e)
                {
                    throw new FormatException($"{path}:{e.Start.Line}: {e.Message}");
                }
            }
            foreach (var document in documents)
            {
                if (PodOf(document) is { } pod)
                {
                    var decision = SidecarInjector.Decide(pod, template);
                    if (decision.Inject)
                    {
                        JsonPatch.Apply(pod, decision.Patch);
                    }
                    Console.Error.WriteLine($"meshctl inject: {document["kind"]} {document["metadata"]?["name"]}: {(decision.Inject ? "injected" : "unchanged")} ({decision.Reason})");
                }
            }
            if (parse.GetValue(output) is { Length: > 0 } target)
            {
                using var writer = new StreamWriter(target);
                ManifestYaml.Write(writer, documents);
            }
            else
            {
                ManifestYaml.Write(Console.Out, documents);
            }
        }));
        return inject;
    }

    /// <summary>The pod (or pod template: it has the same metadata and spec) a document runs, if any.</summary>
    private static JsonObject? PodOf(JsonNode document) => document["kind"]?.GetValue<string>() switch
    {
        "Pod" => document as JsonObject,
        "Deployment" or "StatefulSet" or "DaemonSet" or "ReplicaSet" or "Job" => document["spec"]?["template"] as JsonObject,
        "CronJob" => document["spec"]?["jobTemplate"]?["spec"]?["template"] as JsonObject,
        _ => null,
    };
}
