using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Etcd;
using MeshGuard.Policy.Engine;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>A replica on etcd: what it reads before anything else, and the services that keep its state there.</summary>
internal static class EtcdStoreServices
{
    /// <summary>What etcd must give first: agreement on the mesh default, the CA (opened with the store key), the version base.</summary>
    public sealed record Opened(CertificateAuthority Ca, StoreKey Key, EtcdVersionBase Versions);

    public static async Task<Opened> OpenAsync(EtcdConnection etcd, ControlPlaneSettings settings, TimeProvider time, CancellationToken cancellation)
    {
        if (await EtcdPolicies.AgreeMeshDefaultAsync(etcd, settings.MeshDefault.ToText(), cancellation) is { } disagreement)
        {
            throw new CliUsageException(disagreement);
        }
        var key = StoreKey.Load(settings.StoreKeyFile);
        var ca = await EtcdCertificateAuthority.LoadOrCreateAsync(etcd, key, settings.TrustDomain, time, cancellation);
        return new Opened(ca, key, await EtcdVersionBase.ReadOrCreateAsync(etcd, time, cancellation));
    }

    /// <summary>Join tokens, registrations, witness records in etcd; the mesh state watched first; leadership and the intermediate followed.</summary>
    public static void AddEtcdStore(this IServiceCollection services, EtcdConnection etcd, Opened opened)
    {
        services.AddSingleton(etcd);
        services.AddSingleton(opened.Key);
        services.AddSingleton(opened.Versions);
        services.AddSingleton(sp => new EtcdJoinTokens(etcd, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<IJoinTokens>(sp => sp.GetRequiredService<EtcdJoinTokens>());
        services.AddSingleton<EtcdMeshState>();
        services.AddHostedService(sp => sp.GetRequiredService<EtcdMeshState>());
        services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<EtcdMeshState>());
        services.AddSingleton<EtcdPolicySource>();
        services.AddSingleton<IEndpointRegistrar, EtcdEndpointRegistrar>();
        services.AddSingleton<IWitnessRecords, EtcdWitnessRecords>();
        services.AddSingleton<EtcdLeadership>();
        services.AddHostedService(sp => sp.GetRequiredService<EtcdLeadership>());
        services.AddHostedService<EtcdIntermediateFollower>();
    }
}
