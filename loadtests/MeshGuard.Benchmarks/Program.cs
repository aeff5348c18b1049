using BenchmarkDotNet.Running;

// dotnet run -c Release -- --filter '*' [--job short]; see ./meshguard.sh bench
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
