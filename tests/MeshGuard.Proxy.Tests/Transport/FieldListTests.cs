using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class FieldListTests
{
    private static readonly string[] Names = ["Host", "host", "HOST", "Content-Length", "content-length", "x-a", "X-A", "x-b", "te", "Cookie", "cookie"];

    private static readonly StringValues[] Values =
    [
        StringValues.Empty, new StringValues((string?)null), "", "1", "42", " 7 ", "-3", "abc", new StringValues(["1", "2"]), new StringValues(["x"]),
    ];

    // Many more names than a scan covers, in two spellings each: the hashed index, removed slots and compaction.
    private static readonly string[] ManyNames = [.. Enumerable.Range(0, 40).SelectMany(i => new[] { $"x-field-{i}", $"X-Field-{i}" }), .. Names];

    [Fact]
    public void EveryOperationAnswersAsHeaderDictionaryDoesOverRandomSequences() => AnswerAsHeaderDictionary(Names, runs: 400, steps: 40);

    [Fact]
    public void WithMoreFieldsThanAScanCoversEveryOperationStillAnswersAsHeaderDictionaryDoes() =>
        AnswerAsHeaderDictionary(ManyNames, runs: 100, steps: 400);

    [Fact]
    public void ThousandsOfFieldsAreAddedFoundAndRemovedInArrivalOrder()
    {
        // What a hostile HTTP/2 block may carry: some 2,000 fields, then most of them removed (forgeable ones, say),
        // then enough new ones that the emptied slots are compacted away.
        var fields = new FieldList();
        for (var i = 0; i < 2000; i++)
        {
            fields.Append($"x-{i}", $"{i}");
        }
        for (var i = 0; i < 2000; i++)
        {
            if (i % 3 != 0)
            {
                Assert.True(fields.Remove($"X-{i}"));
            }
        }
        for (var i = 2000; i < 2100; i++)
        {
            fields.Append($"x-{i}", $"{i}");
        }
        fields.Append("x-3", "again");
        Assert.Equal(667 + 100, fields.Count);
        Assert.Equal("3,again", fields["X-3"]);
        Assert.False(fields.ContainsKey("x-1"));
        Assert.Equal([.. Enumerable.Range(0, 2100).Where(i => i % 3 == 0 || i >= 2000).Select(i => $"x-{i}")], fields.Keys);
        fields.Clear();
        Assert.True(fields.Capacity <= FieldList.ScanLimit, "a cleared list gives up what the large block grew");
        fields.Append("host", "orders");
        Assert.Equal("orders", ((IHeaderDictionary)fields).Host);
    }

    private static void AnswerAsHeaderDictionary(string[] names, int runs, int steps)
    {
        var random = new Random(2026_12_06);
        for (var run = 0; run < runs; run++)
        {
            var expected = new HeaderDictionary();
            var actual = new FieldList(run % 2); // grows from none or one slot: the resize path is part of every run
            for (var step = 0; step < steps; step++)
            {
                var name = names[random.Next(names.Length)];
                var value = Values[random.Next(Values.Length)];
                var context = $"run {run} step {step}: {name}={value}";
                switch (random.Next(10))
                {
                    case 0:
                        expected[name] = value;
                        actual[name] = value;
                        break;
                    case 1:
                        expected.Append(name, value);
                        actual.Append(name, value);
                        break;
                    case 2:
                        Assert.Equal(Outcome(() => expected.Add(name, value)), Outcome(() => actual.Add(name, value)));
                        break;
                    case 3:
                        Assert.True(expected.Remove(name) == actual.Remove(name), context);
                        break;
                    case 4:
                        var pair = new KeyValuePair<string, StringValues>(name, value);
                        Assert.True(expected.Contains(pair) == actual.Contains(pair), context);
                        Assert.True(expected.Remove(pair) == actual.Remove(pair), context);
                        break;
                    case 5:
                        long? length = random.Next(3) == 0 ? null : random.Next(1000);
                        expected.ContentLength = length;
                        actual.ContentLength = length;
                        break;
                    case 6 when random.Next(steps / 5) == 0:
                        expected.Clear();
                        actual.Clear();
                        break;
                    default:
                        Assert.True(expected.TryGetValue(name, out var a) == actual.TryGetValue(name, out var b), context);
                        Assert.Equal(a, b);
                        break;
                }
                Assert.Equal(expected[name], actual[name]);
                Assert.True(expected.ContainsKey(name) == actual.ContainsKey(name), context);
                Assert.Equal(expected.ContentLength, actual.ContentLength);
                Assert.Equal(expected.Count, actual.Count);
                Assert.Equal(Sorted(expected), Sorted(actual));
            }
        }
    }

    [Fact]
    public void FieldsKeepArrivalOrderAndTheFirstSpellingOfTheirName()
    {
        var fields = new FieldList(2);
        fields.Append("Host", "orders");
        fields.Append("x-b", "1");
        fields.Append("X-A", "2");
        fields.Append("x-a", "3");
        fields.Append("X-B", "4");
        fields.Remove("HOST");
        fields.Append("host", "again");
        Assert.Equal(["x-b=1,4", "X-A=2,3", "host=again"], fields.Select(f => $"{f.Key}={f.Value}"));
        var copied = new KeyValuePair<string, StringValues>[4];
        fields.CopyTo(copied, 1);
        Assert.Equal("X-A", copied[2].Key);
        Assert.Equal(["x-b", "X-A", "host"], fields.Keys);
    }

    [Fact]
    public void ChangingTheFieldsWhileEnumeratingThemIsRefused()
    {
        var fields = new FieldList { ["a"] = "1", ["b"] = "2" };
        Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var field in fields)
            {
                fields.Remove(field.Key);
            }
        });
    }

    [Fact]
    public void ClearedFieldsHoldNoStringsOfTheRequestBefore()
    {
        var fields = new FieldList(4);
        var weak = AppendFreshValue(fields);
        fields.Clear();
        GC.Collect();
        Assert.False(weak.IsAlive);
        Assert.Empty(fields);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference AppendFreshValue(FieldList fields)
    {
        var value = new string('v', 3);
        fields.Append("x-secret", value);
        return new WeakReference(value);
    }

    private static string Outcome(Action action)
    {
        try
        {
            action();
            return "done";
        }
        catch (ArgumentException)
        {
            return "refused";
        }
    }

    private static List<string> Sorted(IHeaderDictionary fields) =>
        [.. fields.Select(f => $"{f.Key}={string.Join('|', f.Value.Select(v => v ?? "<null>"))}").Order(StringComparer.Ordinal)];
}
