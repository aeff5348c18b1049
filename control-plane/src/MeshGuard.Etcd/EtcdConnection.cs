using Etcdserverpb;
using Grpc.Core;
using Grpc.Net.Client;

namespace MeshGuard.Etcd;

/// <summary>
/// One connection to an etcd cluster: a gRPC channel per member, calls sent to the member in use and moved to
/// the next when it is unreachable (every member is tried once per call). Each call is bounded by
/// <see cref="CallTimeout"/>. A call that may have been applied before its member went away is only retried
/// when the caller's request is safe to repeat: puts are, and every transaction MeshGuard sends compares
/// revisions first, so a repeat changes nothing twice.
/// </summary>
public sealed class EtcdConnection : IDisposable
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);
    private readonly GrpcChannel[] _channels;
    private int _current;

    public EtcdConnection(StoreLocation location)
    {
        Location = location;
        _channels = [.. location.Endpoints.Select(static endpoint => GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 * 1024 * 1024,
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                ConnectTimeout = TimeSpan.FromSeconds(3),
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            },
        }))];
    }

    public StoreLocation Location { get; }

    /// <summary>The member in use, for logs.</summary>
    public Uri Member => Location.Endpoints[Volatile.Read(ref _current)];

    /// <summary>A watch client on the member in use (a watch stream is the caller's to resume elsewhere).</summary>
    public Watch.WatchClient WatchClient() => new(_channels[Volatile.Read(ref _current)]);

    /// <summary>Moves to the next member after <paramref name="failed"/> (a no-op if another caller already moved).</summary>
    public void Failover(Uri failed)
    {
        var index = Array.IndexOf([.. Location.Endpoints], failed);
        if (index >= 0)
        {
            Interlocked.CompareExchange(ref _current, (index + 1) % _channels.Length, index);
        }
    }

    public Task<RangeResponse> RangeAsync(RangeRequest request, CancellationToken cancellation) =>
        CallAsync((channel, options) => new KV.KVClient(channel).RangeAsync(request, options).ResponseAsync, cancellation);

    public Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellation) =>
        CallAsync((channel, options) => new KV.KVClient(channel).TxnAsync(request, options).ResponseAsync, cancellation);

    public Task<PutResponse> PutAsync(string key, string value, CancellationToken cancellation) =>
        CallAsync((channel, options) => new KV.KVClient(channel).PutAsync(
            new PutRequest { Key = EtcdKeys.Key(key), Value = EtcdKeys.Key(value) }, options).ResponseAsync, cancellation);

    public Task<DeleteRangeResponse> DeleteAsync(string key, CancellationToken cancellation) =>
        CallAsync((channel, options) => new KV.KVClient(channel).DeleteRangeAsync(
            new DeleteRangeRequest { Key = EtcdKeys.Key(key) }, options).ResponseAsync, cancellation);

    public Task<LeaseGrantResponse> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellation) =>
        CallAsync((channel, options) => new Lease.LeaseClient(channel).LeaseGrantAsync(
            new LeaseGrantRequest { TTL = (long)ttl.TotalSeconds }, options).ResponseAsync, cancellation);

    public Task<LeaseRevokeResponse> RevokeLeaseAsync(long lease, CancellationToken cancellation) =>
        CallAsync((channel, options) => new Lease.LeaseClient(channel).LeaseRevokeAsync(new LeaseRevokeRequest { ID = lease }, options).ResponseAsync, cancellation);

    public Task<LeaseKeepAliveResponse> KeepAliveOnceAsync(long lease, CancellationToken cancellation) =>
        CallAsync(async (channel, options) =>
        {
            using var call = new Lease.LeaseClient(channel).LeaseKeepAlive(options);
            await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = lease }, options.CancellationToken);
            await call.RequestStream.CompleteAsync();
            return await call.ResponseStream.MoveNext(options.CancellationToken) ? call.ResponseStream.Current : new LeaseKeepAliveResponse { ID = lease, TTL = 0 };
        }, cancellation);

    /// <summary>Every key under <paramref name="prefix"/>.</summary>
    public Task<RangeResponse> RangePrefixAsync(string prefix, CancellationToken cancellation) =>
        RangeAsync(new RangeRequest { Key = EtcdKeys.Key(prefix), RangeEnd = EtcdKeys.RangeEnd(prefix) }, cancellation);

    /// <summary>
    /// Deletes the keys under <paramref name="prefix"/> whose value <paramref name="stale"/> says are due (the
    /// leader's sweeps), each only at the revision that was read, so one written again meanwhile stays; returns how many.
    /// </summary>
    public async Task<int> SweepAsync(string prefix, Func<string, bool> stale, CancellationToken cancellation)
    {
        var swept = 0;
        foreach (var kv in (await RangePrefixAsync(prefix, cancellation)).Kvs)
        {
            if (stale(kv.Value.ToStringUtf8())
                && (await TxnAsync(EtcdTxn.When(EtcdTxn.Unchanged(kv.Key, kv.ModRevision), EtcdTxn.Delete(kv.Key)), cancellation)).Succeeded)
            {
                swept++;
            }
        }
        return swept;
    }

    /// <summary>The value of one key as text, with its revision; null when absent.</summary>
    public async Task<(string Value, long ModRevision)?> GetAsync(string key, CancellationToken cancellation)
    {
        var response = await RangeAsync(new RangeRequest { Key = EtcdKeys.Key(key) }, cancellation);
        return response.Kvs.Count == 0 ? null : (response.Kvs[0].Value.ToStringUtf8(), response.Kvs[0].ModRevision);
    }

    private async Task<T> CallAsync<T>(Func<GrpcChannel, CallOptions, Task<T>> call, CancellationToken cancellation)
    {
        RpcException? last = null;
        for (var tried = 0; tried < _channels.Length; tried++)
        {
            var index = Volatile.Read(ref _current);
            try
            {
                return await call(_channels[index], new CallOptions(deadline: DateTime.UtcNow + CallTimeout, cancellationToken: cancellation));
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && !cancellation.IsCancellationRequested)
            {
                last = e;
                Failover(Location.Endpoints[index]);
            }
        }
        throw new StoreUnavailableException($"etcd is unreachable at {Location}: {last!.Status.Detail}", last);
    }

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }
}

/// <summary>No member of the etcd cluster answered.</summary>
public sealed class StoreUnavailableException(string message, Exception inner) : IOException(message, inner);
