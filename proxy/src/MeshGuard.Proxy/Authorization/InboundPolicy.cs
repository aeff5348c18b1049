using MeshGuard.Policy.Engine;

namespace MeshGuard.Proxy.Authorization;

/// <summary>
/// The decision table in force for this workload's inbound traffic, swapped whole when a snapshot is
/// applied. Until the first snapshot there is none, and every request is denied (fail closed).
/// </summary>
internal sealed class InboundPolicy
{
    private WorkloadAuthorizer? _current;

    public WorkloadAuthorizer? Current => Volatile.Read(ref _current);

    public void Apply(WorkloadAuthorizer authorizer) => Volatile.Write(ref _current, authorizer);
}
