using MeshGuard.Tests.Common;

namespace MeshGuard.Proxy.Tests;

/// <summary>
/// Dependencies point one way: the sidecar's namespaces, read from the compiled assembly, must form no cycle. The
/// composition root (Program, SidecarHost, ProxySettings) is imported by none: each module takes its own settings
/// record, which the root fills; FlowLog names the uploader only by the interface it defines, and telemetry reads
/// the log's counters instead of the log writing into telemetry.
/// </summary>
public sealed class NamespaceDependencyTests
{
    private const string Root = "MeshGuard.Proxy";

    private static NamespaceGraph ReadGraph() => NamespaceGraph.Read(typeof(MeshGuard.Proxy.Transport.MeshHeaders).Assembly.Location, Root);

    [Fact]
    public void TheSidecarsNamespacesFormNoCycle()
    {
        var cycles = ReadGraph().DescribeCycles();
        Assert.True(cycles.Count == 0, "namespaces that import each other: " + string.Join("; ", cycles));
    }

    [Fact]
    public void NoModuleImportsTheCompositionRoot()
    {
        var graph = ReadGraph().Edges;
        var intoRoot = graph.Where(n => n.Key != Root && n.Value.Contains(Root)).Select(n => n.Key).ToList();
        Assert.True(intoRoot.Count == 0, "import the root: " + string.Join(", ", intoRoot));
    }

    [Fact]
    public void TheTransportLayerImportsNoOtherNamespaceOfTheSidecar()
    {
        var graph = ReadGraph().Edges;
        var transport = graph.Where(n => n.Key.StartsWith(Root + ".Transport", StringComparison.Ordinal))
            .SelectMany(n => n.Value.Where(t => !t.StartsWith(Root + ".Transport", StringComparison.Ordinal)).Select(t => n.Key + "->" + t)).ToList();
        Assert.True(transport.Count == 0, string.Join(", ", transport));
    }
}
