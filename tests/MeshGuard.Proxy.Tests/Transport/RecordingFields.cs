using System.Text;
using MeshGuard.Proxy.Transport.Http1;

namespace MeshGuard.Proxy.Tests.Transport;

/// <summary>The fields a parser handed on, in order, as text.</summary>
internal sealed class RecordingFields : IFieldSink
{
    public List<(string Name, string Value)> Seen { get; } = [];

    public void OnField(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Seen.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
}
