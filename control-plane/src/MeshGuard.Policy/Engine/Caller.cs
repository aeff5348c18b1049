using MeshGuard.Spiffe;

namespace MeshGuard.Policy.Engine;

/// <summary>
/// Who is calling, in the form policies match on: the SPIFFE ID text and its namespace. Built once per
/// connection, so that a decision does not parse the ID again.
/// </summary>
public sealed class Caller
{
    private Caller(string id, string? ns, string trustDomain)
    {
        Id = id;
        Namespace = ns;
        TrustDomain = trustDomain;
    }

    public string Id { get; }

    /// <summary>The <c>ns</c> segment of the ID, or null for an ID not of the workload form.</summary>
    public string? Namespace { get; }

    public string TrustDomain { get; }

    public static Caller From(SpiffeId id) => new(id.ToString(), id.GetPathValue("ns"), id.TrustDomain);
}

/// <summary>Request headers as the evaluator reads them; implemented by value types so that nothing is boxed.</summary>
public interface IRequestHeaders
{
    /// <summary>True when header <paramref name="name"/> (lower-case) has one of <paramref name="accepted"/> exactly.</summary>
    bool HasValueIn(string name, string[] accepted);
}

/// <summary>No headers at all (L4 connections).</summary>
public readonly struct NoHeaders : IRequestHeaders
{
    public bool HasValueIn(string name, string[] accepted) => false;
}

/// <summary>Headers from a plain dictionary: meshctl and tests.</summary>
public readonly struct DictionaryHeaders(IReadOnlyDictionary<string, string> headers) : IRequestHeaders
{
    public bool HasValueIn(string name, string[] accepted)
    {
        foreach (var (key, value) in headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase) && Array.IndexOf(accepted, value) >= 0)
            {
                return true;
            }
        }
        return false;
    }
}
