using System.Globalization;
using MeshGuard.Tests.Common;

namespace MeshGuard.Fuzz.Tests;

/// <summary>
/// A short fuzz run of every harness in the suite: first the seed corpus and the inputs of past crashes
/// (tests/fuzz/corpus/TARGET/regression-*), then mutated inputs for MESHGUARD_FUZZ_SECONDS (default 5) each.
/// The seed is fixed (MESHGUARD_FUZZ_SEED changes it), so the suite tries the same inputs on every run and a
/// red run replays with `meshguard-fuzz TARGET mutate CORPUS SECONDS SEED`; new ground is for the fuzzers:
/// ./meshguard.sh fuzz (AFL++, coverage-guided), or meshguard-fuzz mutate with other seeds.
/// </summary>
public sealed class ShortFuzzRunTests
{
    public static TheoryData<string> Targets => [.. FuzzTargets.All.Keys];

    [Theory]
    [MemberData(nameof(Targets))]
    public void MutatedInputsAreRefusedWithAReasonAndNeverThrow(string target)
    {
        var corpus = Path.Combine(RepositoryRoot.Path, "tests", "fuzz", "corpus", target);
        var seconds = double.Parse(Environment.GetEnvironmentVariable("MESHGUARD_FUZZ_SECONDS") ?? "5", CultureInfo.InvariantCulture);
        var seed = int.Parse(Environment.GetEnvironmentVariable("MESHGUARD_FUZZ_SEED") ?? "20261124", CultureInfo.InvariantCulture);
        var outcome = FuzzRun.Run(target, corpus, TimeSpan.FromSeconds(seconds), seed);
        Console.WriteLine($"fuzz {target}: {outcome.Executions} inputs in {seconds} s (seed {seed})");
        if (outcome.Failure is not null)
        {
            var kept = Path.Combine(Path.GetTempPath(), $"meshguard-fuzz-{target}-{seed}");
            File.WriteAllBytes(kept, outcome.FailingInput!);
            Assert.Fail($"{target} threw after {outcome.Executions} inputs (seed {seed}); input kept in {kept}\n{outcome.Failure}");
        }
        Assert.True(outcome.Executions > Directory.GetFiles(corpus).Length, "the run tried no mutated input");
    }

}
