using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// A peer's connection after its handshake: the TLS stream over the socket, the features Kestrel's own TLS layer
/// would have set (the client certificate, the protocol chosen), and the stream itself for a server that frames it
/// directly. Pipes over the stream are made only for whoever asks for <see cref="Transport"/> (HTTP/1.1, opaque TCP).
/// Aborting closes the socket; the connection's place in the listener's limit is given back once, when it is disposed.
/// </summary>
internal sealed class InboundTlsConnection : ConnectionContext, IMemoryPoolFeature, ITlsConnectionFeature, ITlsApplicationProtocolFeature, ISslStreamFeature, IDuplexPipe
{
    private readonly SslStream _tls;
    private readonly MeshGuard.Hosting.ConnectionLimit _limit;
    private readonly CancellationTokenSource _closed = new();
    private PipeReader? _input;
    private PipeWriter? _output;
    private int _disposed;

    public InboundTlsConnection(SslStream tls, Socket socket, long id, MeshGuard.Hosting.ConnectionLimit limit)
    {
        _tls = tls;
        _limit = limit;
        ConnectionId = "in-" + id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        LocalEndPoint = socket.LocalEndPoint;
        RemoteEndPoint = socket.RemoteEndPoint;
        Features.Set<ITlsConnectionFeature>(this);
        Features.Set<ITlsApplicationProtocolFeature>(this);
        Features.Set<ISslStreamFeature>(this);
        Features.Set<IMemoryPoolFeature>(this);
        ConnectionClosed = _closed.Token;
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features { get; } = new FeatureCollection();

    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

    public override IDuplexPipe Transport { get => this; set => throw new NotSupportedException("the transport is the TLS stream's"); }

    // Blocks of one size, as Kestrel's own transport gives its HTTP/1.1 layer (its chunked writer sizes a chunk's
    // prefix by the pool's largest block).
    PipeReader IDuplexPipe.Input => _input ??= PipeReader.Create(_tls, new StreamPipeReaderOptions(pool: DataPathBlocks.Small, bufferSize: DataPathBlocks.Small.BlockSize, minimumReadSize: 1024, leaveOpen: true));

    PipeWriter IDuplexPipe.Output => _output ??= PipeWriter.Create(_tls, new StreamPipeWriterOptions(pool: DataPathBlocks.Small, minimumBufferSize: DataPathBlocks.Small.BlockSize, leaveOpen: true));

    MemoryPool<byte> IMemoryPoolFeature.MemoryPool => DataPathBlocks.Small;

    public override void Abort(ConnectionAbortedException abortReason)
    {
        // Closing the stream closes the socket: whoever reads or writes it ends.
        _tls.Dispose();
        Closed();
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await _tls.DisposeAsync();
            Closed();
            _closed.Dispose();
            _limit.Leave();
        }
        await base.DisposeAsync();
    }

    private void Closed()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed already: the token was cancelled then.
        }
    }

    X509Certificate2? ITlsConnectionFeature.ClientCertificate
    {
        get => _tls.RemoteCertificate as X509Certificate2;
        set => throw new NotSupportedException("the handshake's certificate");
    }

    Task<X509Certificate2?> ITlsConnectionFeature.GetClientCertificateAsync(CancellationToken cancellationToken) =>
        Task.FromResult(_tls.RemoteCertificate as X509Certificate2);

    ReadOnlyMemory<byte> ITlsApplicationProtocolFeature.ApplicationProtocol => _tls.NegotiatedApplicationProtocol.Protocol;

    SslStream ISslStreamFeature.SslStream => _tls;
}
