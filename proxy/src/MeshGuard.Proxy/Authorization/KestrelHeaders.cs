using MeshGuard.Policy.Engine;

namespace MeshGuard.Proxy.Authorization;

/// <summary>The request's headers as the policy engine reads them, without copying or boxing.</summary>
internal readonly struct KestrelHeaders(IHeaderDictionary headers) : IRequestHeaders
{
    public bool HasValueIn(string name, string[] accepted)
    {
        if (!headers.TryGetValue(name, out var values))
        {
            return false;
        }
        foreach (var value in values)
        {
            if (value is not null && Array.IndexOf(accepted, value) >= 0)
            {
                return true;
            }
        }
        return false;
    }
}
