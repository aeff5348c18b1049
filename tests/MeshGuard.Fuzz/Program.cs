using System.Globalization;
using MeshGuard.Fuzz;

// meshguard-fuzz TARGET afl                          : one input per run from AFL++ (SharpFuzz, out of process)
// meshguard-fuzz TARGET mutate CORPUS SECONDS [SEED] : in-process mutation of the seed corpus
if (args.Length < 2 || !FuzzTargets.All.TryGetValue(args[0], out var harness))
{
    Console.Error.WriteLine($"usage: meshguard-fuzz <{string.Join('|', FuzzTargets.All.Keys)}> afl | mutate CORPUS SECONDS [SEED]");
    return 2;
}
if (args[1] == "afl")
{
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        harness(buffer.ToArray());
    });
    return 0;
}
if (args[1] == "mutate" && args.Length >= 4)
{
    var seed = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : Environment.TickCount;
    var outcome = FuzzRun.Run(args[0], args[2], TimeSpan.FromSeconds(double.Parse(args[3], CultureInfo.InvariantCulture)), seed);
    if (outcome.Failure is null)
    {
        Console.WriteLine($"{args[0]}: {outcome.Executions} inputs, no failure (seed {seed})");
        return 0;
    }
    var crash = Path.Combine(args[2], "..", "..", "crashes", args[0]);
    Directory.CreateDirectory(crash);
    var file = Path.Combine(crash, $"crash-{seed}-{outcome.Executions}");
    File.WriteAllBytes(file, outcome.FailingInput!);
    Console.Error.WriteLine($"{args[0]}: failed after {outcome.Executions} inputs (seed {seed}); input kept in {file}\n{outcome.Failure}");
    return 1;
}
Console.Error.WriteLine("usage: meshguard-fuzz TARGET afl | mutate CORPUS SECONDS [SEED]");
return 2;
