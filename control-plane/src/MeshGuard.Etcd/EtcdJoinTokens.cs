using System.Text.Json;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Etcd;

/// <summary>
/// Join tokens in etcd, for replicas that share them: stored under the token's SHA-256, spent by one transaction
/// that deletes the token only if it is still the version that was looked up and records it as spent. Two
/// replicas handed the same token at once both look it up, but only one transaction succeeds.
/// </summary>
public sealed class EtcdJoinTokens(EtcdConnection etcd, TimeProvider time) : IJoinTokens
{
    public async Task<string> CreateAsync(SpiffeId id, TimeSpan ttl, CancellationToken cancellation)
    {
        var (token, record) = JoinTokenStore.NewToken(id, ttl, time);
        await etcd.PutAsync(EtcdKeys.Tokens + JoinTokenStore.Hash(token), JsonSerializer.Serialize(record, DataDirJsonContext.Default.JoinTokenRecord), cancellation);
        return token;
    }

    public async Task<JoinTokenLookup> FindAsync(string? token, CancellationToken cancellation) => (await LookUpAsync(token, cancellation)).Lookup;

    public async Task<JoinTokenLookup> ConsumeAsync(string? token, CancellationToken cancellation)
    {
        var (lookup, revision, value) = await LookUpAsync(token, cancellation);
        if (lookup.Status != JoinTokenStatus.Valid)
        {
            return lookup;
        }
        var key = EtcdKeys.Tokens + JoinTokenStore.Hash(token!);
        var spend = EtcdTxn.When(EtcdTxn.Unchanged(key, revision),
            EtcdTxn.Delete(EtcdKeys.Key(key)), EtcdTxn.Put(EtcdKeys.SpentTokens + JoinTokenStore.Hash(token!), value!));
        var result = await etcd.TxnAsync(spend, cancellation);
        return result.Succeeded ? lookup : JoinTokenLookup.Refused(JoinTokenStatus.AlreadyUsed);
    }

    /// <summary>Deletes tokens and spent markers past their expiry (the leader's sweep); returns how many.</summary>
    public async Task<int> SweepExpiredAsync(CancellationToken cancellation)
    {
        // A token that no longer parses is swept too: only replicas and meshctl write here.
        bool Expired(string json) => Parse(json) is not { } record || time.GetUtcNow() >= record.ExpiresAt;
        return await etcd.SweepAsync(EtcdKeys.Tokens, Expired, cancellation) + await etcd.SweepAsync(EtcdKeys.SpentTokens, Expired, cancellation);
    }

    private async Task<(JoinTokenLookup Lookup, long Revision, string? Value)> LookUpAsync(string? token, CancellationToken cancellation)
    {
        if (!JoinTokenStore.IsWellFormed(token))
        {
            return (JoinTokenLookup.Refused(JoinTokenStatus.Unknown), 0, null);
        }
        var hash = JoinTokenStore.Hash(token);
        var stored = await etcd.GetAsync(EtcdKeys.Tokens + hash, cancellation);
        if (stored is not { } found)
        {
            var spent = await etcd.GetAsync(EtcdKeys.SpentTokens + hash, cancellation);
            return (JoinTokenLookup.Refused(spent is null ? JoinTokenStatus.Unknown : JoinTokenStatus.AlreadyUsed), 0, null);
        }
        var record = Parse(found.Value);
        return record is null
            ? (JoinTokenLookup.Refused(JoinTokenStatus.Unknown), 0, null)
            : (JoinTokenStore.Evaluate(record, time), found.ModRevision, found.Value);
    }

    private static JoinTokenRecord? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, DataDirJsonContext.Default.JoinTokenRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
