using System.Text;
using Google.Protobuf;

namespace MeshGuard.Etcd;

/// <summary>
/// The layout of MeshGuard's keys in etcd. Everything lives under <see cref="Root"/>; the replicas watch
/// <see cref="Policies"/>, <see cref="Registrations"/> and <see cref="Revocations"/>, whose revision is the
/// version of the mesh config they send.
/// </summary>
public static class EtcdKeys
{
    public const string Root = "/meshguard/";

    /// <summary>The CA: certificates in PEM, private keys sealed with the store key (one JSON document).</summary>
    public const string Ca = Root + "ca";

    /// <summary>One AccessPolicy document (YAML) per key: <c>policies/NAME</c>.</summary>
    public const string Policies = Root + "policies/";

    /// <summary>One endpoint per key: <c>registrations/NAMESPACE/SERVICE/ADDRESS</c>, the value its SPIFFE ID.</summary>
    public const string Registrations = Root + "registrations/";

    /// <summary>
    /// The service bindings (secure naming), in the format of service-bindings.txt. Named so that it sorts between
    /// policies/ and revocations: inside the range the replicas watch.
    /// </summary>
    public const string ServiceBindings = Root + "registration-bindings";

    /// <summary>The revocation list, in the format of revocations.txt.</summary>
    public const string Revocations = Root + "revocations";

    /// <summary>Unspent join tokens by the SHA-256 of the token: <c>tokens/HASH</c>.</summary>
    public const string Tokens = Root + "tokens/";

    /// <summary>Spent join tokens, kept until they would have expired so a replay is told "already used".</summary>
    public const string SpentTokens = Root + "tokens-spent/";

    /// <summary>The mesh default every replica enforces (deny | allow-authenticated | allow), recorded by the first.</summary>
    public const string MeshDefault = Root + "mesh-default";

    /// <summary>The latest signed flow-log record each workload's sidecar gave a replica: <c>witness/HASH</c>.</summary>
    public const string Witness = Root + "witness/";

    /// <summary>What config versions count from: the time in milliseconds when the first replica started on this etcd.</summary>
    public const string VersionBase = Root + "version-base";

    /// <summary>The replica that does the once-only work, held under a lease.</summary>
    public const string Leader = Root + "leader";

    public static ByteString Key(string key) => ByteString.CopyFromUtf8(key);

    /// <summary>The end of the range holding every key that starts with <paramref name="prefix"/>.</summary>
    public static ByteString RangeEnd(string prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(prefix);
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }

    /// <summary>The key of a policy document; names are what <c>meshctl policy apply</c> was given, without directories.</summary>
    public static string Policy(string name) => Policies + name;

    public static string Registration(string ns, string service, string address) => $"{Registrations}{ns}/{service}/{address}";
}
