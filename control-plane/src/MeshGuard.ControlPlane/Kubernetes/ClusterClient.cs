using k8s;

namespace MeshGuard.ControlPlane.Kubernetes;

/// <summary>The control plane's one client of its cluster's API, shared by every source that reads the cluster, and the server it talks to.</summary>
internal sealed record ClusterConnection(IKubernetes Client, string Server);

/// <summary>Where the cluster's API is: a kubeconfig file if given, else the pod's service account, else ~/.kube/config.</summary>
internal static class ClusterClient
{
    public static ClusterConnection Create(string? kubeconfig)
    {
        KubernetesClientConfiguration config;
        try
        {
            config = kubeconfig is { } file
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(file)
                : KubernetesClientConfiguration.IsInCluster()
                    ? KubernetesClientConfiguration.InClusterConfig()
                    : KubernetesClientConfiguration.BuildConfigFromConfigFile();
        }
        catch (k8s.Exceptions.KubeConfigException e)
        {
            throw new FormatException($"no usable cluster configuration ({kubeconfig ?? "in-cluster or ~/.kube/config"}): {e.Message}", e);
        }
        return new ClusterConnection(new k8s.Kubernetes(config), config.Host);
    }

    /// <summary>The namespace of the pod this runs in (from its service-account mount), else meshguard.</summary>
    public static string OwnNamespace()
    {
        const string File = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
        return System.IO.File.Exists(File) && System.IO.File.ReadAllText(File).Trim() is { Length: > 0 } ns ? ns : "meshguard";
    }
}
