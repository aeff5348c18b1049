using System.Collections.Concurrent;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// Admits a flow-log segment upload (<c>Witness.Upload</c> or <c>Witness.UploadParts</c>) before any of its body is
/// read. Each call may hold up to 16 MiB while the control plane joins and checks it, and every workload with an SVID
/// can make such calls: unbounded, a few of them at once could exhaust the control plane's memory. So a workload has at
/// most one upload in flight (its sidecar sends one segment at a time, in chain order; a second is refused at once),
/// and at most <see cref="MaxJoining"/> uploads are taken at a time across the mesh (the others wait up to
/// <see cref="MaxWait"/>, their bodies held back by HTTP/2 flow control, then are refused). A refused sidecar keeps
/// its segment and tries again after its backoff. An admitted upload ends within <see cref="MaxTaking"/>: a caller that
/// trickles its body cannot keep a place for longer (a sidecar sends its largest segment in well under a second).
/// </summary>
internal sealed class SegmentUploadGate(TimeProvider time) : IDisposable
{
    /// <summary>Uploads taken at once: at most 64 MiB of segments held by the control plane.</summary>
    internal const int MaxJoining = 4;

    internal static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    internal static readonly TimeSpan MaxTaking = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _slots = new(MaxJoining, MaxJoining);
    private readonly ConcurrentDictionary<SpiffeId, byte> _uploading = new();

    /// <summary>Runs <paramref name="next"/> for an admitted upload, or answers with a gRPC status and reads nothing.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (PeerIdentity.Of(context) is not { } caller)
        {
            Refuse(context, Grpc.Core.StatusCode.Unauthenticated, "a client SVID is required");
            return;
        }
        if (!_uploading.TryAdd(caller, 0))
        {
            Refuse(context, Grpc.Core.StatusCode.ResourceExhausted, "this workload already has a flow-log segment upload in flight");
            return;
        }
        try
        {
            using var timeout = new CancellationTokenSource(MaxWait, time);
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, timeout.Token);
            try
            {
                await _slots.WaitAsync(waiting.Token);
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                Refuse(context, Grpc.Core.StatusCode.ResourceExhausted, "the control plane is taking other flow-log segments; try again later");
                return;
            }
            try
            {
                using var taking = new CancellationTokenSource(MaxTaking, time);
                using var cut = taking.Token.Register(static c => ((HttpContext)c!).Abort(), context);
                await next(context);
            }
            finally
            {
                _slots.Release();
            }
        }
        finally
        {
            _uploading.TryRemove(caller, out _);
        }
    }

    public void Dispose() => _slots.Dispose();

    /// <summary>A gRPC answer with no message: the status in the response headers (a trailers-only response).</summary>
    private static void Refuse(HttpContext context, Grpc.Core.StatusCode status, string message)
    {
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/grpc";
        context.Response.Headers["grpc-status"] = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers["grpc-message"] = message;
    }
}
