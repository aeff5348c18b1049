namespace MeshGuard.ControlPlane.Hosting;

/// <summary>Where AccessPolicies come from (<c>--policy-source</c>).</summary>
internal enum PolicySourceKind
{
    /// <summary>DATA/policies/**/*.yaml, watched (or etcd, with <c>--store</c>).</summary>
    Files,

    /// <summary>AccessPolicy objects of the cluster, listed and watched.</summary>
    Kubernetes,
}

/// <summary>Where the service table comes from (<c>--endpoint-source</c>).</summary>
internal enum EndpointSourceKind
{
    /// <summary>What attested sidecars register.</summary>
    Attestation,

    /// <summary>The cluster's meshed pods, listed and watched: the same table for every replica.</summary>
    Kubernetes,
}

/// <summary>Where the revocation list comes from (<c>--revocation-source</c>).</summary>
internal enum RevocationSourceKind
{
    /// <summary>DATA/revocations.txt (or etcd, with <c>--store</c>).</summary>
    Files,

    /// <summary>The ConfigMap meshguard-revocations in the control plane's namespace, watched.</summary>
    Kubernetes,
}

/// <summary>A source kind read from its flag: one of the kind's names in lower case, else a usage error naming them all.</summary>
internal static class SourceKinds
{
    public static T Parse<T>(string flag, string? text)
        where T : struct, Enum
    {
        foreach (var kind in Enum.GetValues<T>())
        {
            if (string.Equals(Name(kind), text, StringComparison.Ordinal))
            {
                return kind;
            }
        }
        throw new MeshGuard.CommandLine.CliUsageException($"{flag} '{text}' must be {string.Join(" or ", Enum.GetValues<T>().Select(Name))}");
    }

    /// <summary>The kind as its flag spells it.</summary>
    public static string Name<T>(T kind)
        where T : struct, Enum => kind.ToString().ToLowerInvariant();
}
