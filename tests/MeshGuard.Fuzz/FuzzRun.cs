using System.Diagnostics;

namespace MeshGuard.Fuzz;

/// <summary>
/// The in-process fuzz loop: first every seed and every saved crash as it is (the regression inputs), then
/// mutated inputs until the time is up. The first exception stops the run and its input is kept.
/// </summary>
public static class FuzzRun
{
    public sealed record Outcome(string Target, long Executions, byte[]? FailingInput, Exception? Failure);

    public static Outcome Run(string target, string corpusDirectory, TimeSpan duration, int seed)
    {
        var harness = FuzzTargets.All[target];
        var corpus = Directory.GetFiles(corpusDirectory).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToList();
        if (corpus.Count == 0)
        {
            throw new InvalidOperationException($"no seed inputs in {corpusDirectory}");
        }
        long executions = 0;
        foreach (var seedInput in corpus)
        {
            if (Try(harness, seedInput) is { } failure)
            {
                return new Outcome(target, executions, seedInput, failure);
            }
            executions++;
        }
        var mutator = new Mutator(corpus, seed);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            var input = mutator.Next();
            if (Try(harness, input) is { } failure)
            {
                return new Outcome(target, executions, input, failure);
            }
            executions++;
        }
        return new Outcome(target, executions, null, null);
    }

    private static Exception? Try(Action<byte[]> harness, byte[] input)
    {
        try
        {
            harness(input);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
