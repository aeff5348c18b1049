namespace MeshGuard.Fuzz;

/// <summary>
/// Fuzzing without a coverage-guided engine, for the test suite: inputs made from the seed corpus by the
/// mutations AFL starts with (bit and byte flips, interesting values, inserted and deleted runs, splices of
/// two seeds). Seeded, so a failure can be replayed with the same seed.
/// </summary>
public sealed class Mutator(IReadOnlyList<byte[]> corpus, int seed)
{
    private static readonly byte[] Interesting = [0, 1, 0x7f, 0x80, 0xff, (byte)'\n', (byte)'\r', (byte)'"', (byte)':', (byte)'/', (byte)'%', (byte)'{', (byte)'-', (byte)' '];
    private readonly Random _random = new(seed);

    public byte[] Next()
    {
        var input = new List<byte>(corpus[_random.Next(corpus.Count)]);
        var rounds = 1 + _random.Next(8);
        for (var i = 0; i < rounds; i++)
        {
            Mutate(input);
        }
        return [.. input];
    }

    private void Mutate(List<byte> input)
    {
        var at = input.Count == 0 ? 0 : _random.Next(input.Count);
        switch (_random.Next(7))
        {
            case 0 when input.Count > 0:
                input[at] ^= (byte)(1 << _random.Next(8));
                break;
            case 1 when input.Count > 0:
                input[at] = Interesting[_random.Next(Interesting.Length)];
                break;
            case 2:
                input.Insert(at, Interesting[_random.Next(Interesting.Length)]);
                break;
            case 3 when input.Count > 0:
                input.RemoveRange(at, Math.Min(input.Count - at, 1 + _random.Next(16)));
                break;
            case 4 when input.Count > 0:
                // Repeat a run: deep nesting, long lines.
                var length = Math.Min(input.Count - at, 1 + _random.Next(32));
                var run = input.GetRange(at, length);
                for (var r = _random.Next(1, 64); r > 0; r--)
                {
                    input.InsertRange(at, run);
                }
                break;
            case 5:
                var other = corpus[_random.Next(corpus.Count)];
                if (other.Length > 0)
                {
                    var from = _random.Next(other.Length);
                    input.InsertRange(at, other.AsSpan(from, Math.Min(other.Length - from, 1 + _random.Next(64))).ToArray());
                }
                break;
            default:
                if (input.Count > 0)
                {
                    input[at] = (byte)_random.Next(256);
                }
                break;
        }
    }
}
