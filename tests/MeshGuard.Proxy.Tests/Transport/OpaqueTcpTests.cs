using System.Text;
using MeshGuard.Proxy.Transport;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class OpaqueTcpTests
{
    /// <summary>
    /// The caller gets the app's reply and closes at once, which cancels the reply's direction while its write is still
    /// settling: the reply is counted all the same (the redis-cli case: a SET's +OK recorded as 0 octets sent).
    /// </summary>
    [Fact]
    public async Task AReplyTheCallerGotIsCountedWhenTheCallerClosesBeforeItsWriteSettles()
    {
        var caller = new CallerThatClosesOnceAnswered();
        var app = new AppThatAnswersOnce("+OK\r\n"u8.ToArray());

        var (fromCaller, fromApp) = await OpaqueTcp.PipeAsync(caller, app, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("+OK\r\n", Encoding.ASCII.GetString(caller.Received.ToArray()));
        Assert.Equal(5, fromApp);
        Assert.Equal(0, fromCaller);
    }

    [Fact]
    public async Task OctetsAreCountedEachWayAsEachSideSentThem()
    {
        using var fromCallerSide = new MemoryStream(new byte[70_000]);
        using var callerSink = new MemoryStream();
        using var caller = new DuplexOf(fromCallerSide, callerSink);
        var app = new AppThatAnswersOnce(new byte[123]);

        var (fromCaller, fromApp) = await OpaqueTcp.PipeAsync(caller, app, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(70_000, fromCaller);
        Assert.Equal(70_000, app.Received.Length);
        Assert.Equal(123, fromApp);
        Assert.Equal(123, callerSink.Length);
    }

    /// <summary>Takes a write, then ends its read side (the caller closes once it has the reply), and settles the write only when cancelled.</summary>
    private sealed class CallerThatClosesOnceAnswered : TestStream
    {
        private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public MemoryStream Received { get; } = new();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await _answered.Task.WaitAsync(cancellationToken);
            return 0;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Received.Write(buffer.Span);
            _answered.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
    }

    /// <summary>Answers once, then waits for more until cancelled; keeps what it is sent.</summary>
    private sealed class AppThatAnswersOnce(byte[] answer) : TestStream
    {
        private bool _answered;

        public MemoryStream Received { get; } = new();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_answered)
            {
                _answered = true;
                answer.CopyTo(buffer);
                return answer.Length;
            }
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Received.Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
    }

    private sealed class DuplexOf(Stream reads, Stream writes) : TestStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => reads.ReadAsync(buffer, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => writes.WriteAsync(buffer, cancellationToken);
    }

    private abstract class TestStream : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
