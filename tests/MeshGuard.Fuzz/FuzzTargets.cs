using System.Text;
using MeshGuard.Contracts;
using MeshGuard.Contracts.Snapshots;
using MeshGuard.FlowLog;
using MeshGuard.Policy.Parsing;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.Fuzz;

/// <summary>
/// One entry per parser that reads what an outsider can write. A target returns for every input, refused or
/// not; an exception escaping it is a bug (the parsers promise an error value, never a throw).
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>(StringComparer.Ordinal)
    {
        ["spiffe-id"] = SpiffeIdText,
        ["policy"] = PolicyYaml,
        ["snapshot"] = SignedSnapshot,
        ["snapshot-content"] = SnapshotContent,
        ["flow-log"] = FlowLog,
        ["request-target"] = RequestTargetAndMethod,
    };

    private static readonly MeshGuard.Policy.Requests.PathNormalization[] PathRules =
    [
        MeshGuard.Policy.Requests.PathNormalization.Default,
        new() { EscapedSlashes = MeshGuard.Policy.Requests.EscapedSlashes.Keep, MergeSlashes = false, PathParameters = MeshGuard.Policy.Requests.PathParameters.Keep },
        new() { EscapedSlashes = MeshGuard.Policy.Requests.EscapedSlashes.Decode, PathParameters = MeshGuard.Policy.Requests.PathParameters.Strip },
    ];

    /// <summary>
    /// The inbound request view's parsers on what a peer sends: the first line is the method, the rest the target.
    /// An accepted target is canonical: it starts with '/', holds no dot segment, and reads back as itself.
    /// </summary>
    public static void RequestTargetAndMethod(byte[] input)
    {
        var text = Encoding.Latin1.GetString(input);
        var newline = text.IndexOf('\n', StringComparison.Ordinal);
        var (method, target) = newline < 0 ? ("GET", text) : (text[..newline], text[(newline + 1)..]);
        _ = MeshGuard.Policy.Requests.RequestMethod.Check(method);
        foreach (var rules in PathRules)
        {
            if (MeshGuard.Policy.Requests.RequestTarget.TryParse(target, rules, out var parsed) != MeshGuard.Policy.Requests.TargetVerdict.Canonical)
            {
                continue;
            }
            var path = parsed.Path;
            if (!path.StartsWith('/') || Array.IndexOf(path.Split('/'), "..") >= 0 || Array.IndexOf(path.Split('/'), ".") >= 0)
            {
                throw new InvalidOperationException($"'{target}' became '{path}', which is not canonical");
            }
            if (MeshGuard.Policy.Requests.RequestTarget.TryParse(path, rules, out var again) != MeshGuard.Policy.Requests.TargetVerdict.Canonical || again.Path != path)
            {
                throw new InvalidOperationException($"'{target}' became '{path}', which does not read back as itself under {rules}");
            }
        }
    }

    private static readonly Lazy<(TrustBundle Bundle, X509Svid Signer)> ControlPlane = new(() =>
    {
        var ca = new TestCa();
        return (ca.Bundle, ca.IssueSvid(ControlPlaneIdentity.For(ca.TrustDomain).ToString()));
    });

    /// <summary>SpiffeId.TryParse: a refusal is an error string; an accepted ID must print back as itself.</summary>
    public static void SpiffeIdText(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        if (SpiffeId.TryParse(text, out var id, out var error))
        {
            if (!SpiffeId.TryParse(id.ToString(), out var again, out _) || again != id)
            {
                throw new InvalidOperationException($"'{text}' parsed as {id}, which does not parse back to itself");
            }
        }
        else if (string.IsNullOrEmpty(error))
        {
            throw new InvalidOperationException($"'{text}' was refused without a reason");
        }
    }

    /// <summary>PolicyParser.Parse: every problem is a located error in the result.</summary>
    public static void PolicyYaml(byte[] input)
    {
        var result = PolicyParser.Parse(Encoding.UTF8.GetString(input), "fuzz.yaml");
        if (result is null)
        {
            throw new InvalidOperationException("no result");
        }
    }

    /// <summary>The CMS decoder and verifier on raw bytes: garbage is refused with a reason.</summary>
    public static void SignedSnapshot(byte[] input)
    {
        var verification = SnapshotSignature.Verify(input, ControlPlane.Value.Bundle, DateTimeOffset.UtcNow);
        if (!verification.IsValid && string.IsNullOrEmpty(verification.Error))
        {
            throw new InvalidOperationException("refused without a reason");
        }
    }

    /// <summary>Content the control plane really signed, in any shape: the snapshot decoder behind the signature.</summary>
    public static void SnapshotContent(byte[] input)
    {
        var (bundle, signer) = ControlPlane.Value;
        var verification = SnapshotSignature.Verify(SnapshotSignature.SignContent(input, signer), bundle, DateTimeOffset.UtcNow);
        if (!verification.IsValid && string.IsNullOrEmpty(verification.Error))
        {
            throw new InvalidOperationException("refused without a reason");
        }
    }

    /// <summary>FlowLogVerifier on one log file of any bytes: every problem is a located finding.</summary>
    public static void FlowLog(byte[] input)
    {
        var directory = Path.Combine(Path.GetTempPath(), "meshguard-fuzz-" + Environment.ProcessId);
        Directory.CreateDirectory(directory);
        File.WriteAllBytes(Path.Combine(directory, FlowLogFormat.FileName(1)), input);
        var report = FlowLogVerifier.Verify(directory, ControlPlane.Value.Bundle);
        if (report.Files != 1)
        {
            throw new InvalidOperationException($"read {report.Files} files, wrote 1");
        }
    }
}
