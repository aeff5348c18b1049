using BenchmarkDotNet.Running;

// dotnet run -c Release -- --filter '*' [--job short]; see ./meshguard.sh bench
BenchmarkSwitcher.FromAssembly(typeof(MeshGuard.Benchmarks.PeerIdentityBenchmarks).Assembly).Run(args);
