using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests;

/// <summary>Dependencies point one way in the control plane too: its namespaces, read from the compiled assembly, form no cycle.</summary>
public sealed class NamespaceDependencyTests
{
    [Fact]
    public void TheControlPlanesNamespacesFormNoCycle()
    {
        var cycles = NamespaceGraph.Read(typeof(MeshGuard.ControlPlane.Ca.CertificateAuthority).Assembly.Location, "MeshGuard.ControlPlane").DescribeCycles();
        Assert.True(cycles.Count == 0, "namespaces that import each other: " + string.Join("; ", cycles));
    }
}
