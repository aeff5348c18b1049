using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlaneScale;
using MeshGuard.Etcd;
using MeshGuard.Spiffe;

// cp-scale: N simulated sidecars against meshguard-cp replicas. Phases: join tokens (not timed), attestation
// (SVIDs issued per second), snapshot streams opened, K policy changes (time from the write to each stream
// having the new version, and to all of them having it), one renewal each. Prints one JSON object.
// With --flow-sidecars M (and --flow-records R each), a last phase: M of the sidecars upload flow logs they wrote
// ahead (R inbound records each, a signed checkpoint every 1,000, in the uploader's segments of up to 1 MiB), all
// at once; reported: lines taken per second and CPU per 10,000 lines, of the replicas and (--store-pids) the store.
// Usage: cp-scale --label TEXT --sidecars N --changes K --bootstrap URL[,URL] --grpc URL[,URL] --bundle FILE
//                 --store files:DATA_DIR|etcd:URL --pids PID[,PID] [--concurrency 32]
//                 [--flow-sidecars M --flow-records R --store-pids PID[,PID]]
var options = ParseOptions(args);
var sidecars = int.Parse(options["--sidecars"], CultureInfo.InvariantCulture);
var changes = int.Parse(options["--changes"], CultureInfo.InvariantCulture);
var concurrency = int.Parse(options.GetValueOrDefault("--concurrency", "32"), CultureInfo.InvariantCulture);
var bootstraps = options["--bootstrap"].Split(',').Select(static u => new Uri(u)).ToArray();
var grpcs = options["--grpc"].Split(',').Select(static u => new Uri(u)).ToArray();
var pids = options["--pids"].Split(',').Select(static p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
var bundle = TrustBundle.Load(options["--bundle"]);
var store = options["--store"];
using var etcd = store.StartsWith(StoreLocation.Scheme, StringComparison.Ordinal) ? new EtcdConnection(StoreLocation.Parse(store, out _)!) : null;
var data = etcd is null ? new DataDirectory(store["files:".Length..]) : null;
IJoinTokens tokens = etcd is null ? new JoinTokenStore(data!.Root, TimeProvider.System) : new EtcdJoinTokens(etcd, TimeProvider.System);
using var stop = new CancellationTokenSource();

// 1. Join tokens, as an operator makes them.
var ids = Enumerable.Range(0, sidecars).Select(i => SpiffeId.ForWorkload(bundle.TrustDomain, "scale", $"sim-{i:D4}")).ToArray();
var joinTokens = new string[sidecars];
await Parallel.ForEachAsync(Enumerable.Range(0, sidecars), new ParallelOptions { MaxDegreeOfParallelism = 16 },
    async (i, c) => joinTokens[i] = await tokens.CreateAsync(ids[i], TimeSpan.FromHours(1), c));

// 2. Attestation: a key, a CSR and one POST each, spread over the replicas.
var sims = new SimulatedSidecar[sidecars];
var attestLatencies = new double[sidecars];
var clients = bootstraps.Select(b => new HttpClient(new SocketsHttpHandler
{
    UseProxy = false,
    MaxConnectionsPerServer = concurrency,
    SslOptions = new System.Net.Security.SslClientAuthenticationOptions
    {
        RemoteCertificateValidationCallback = (_, server, chain, _) => server is System.Security.Cryptography.X509Certificates.X509Certificate2 s
            && X509SvidVerifier.Verify(s, chain?.ChainPolicy.ExtraStore, bundle, DateTimeOffset.UtcNow).Id == ControlPlaneIdentity.For(bundle.TrustDomain),
    },
})
{ BaseAddress = b }).ToArray();
var cpu = ReplicaUsage.CpuSeconds(pids);
var clock = Stopwatch.StartNew();
await Parallel.ForEachAsync(Enumerable.Range(0, sidecars), new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, c) =>
{
    var replica = i % bootstraps.Length;
    // Secure naming: a service is served by the service account of its name (no service-bindings here).
    var service = $"sim-{i:D4}";
    var address = $"127.0.{1 + (i / 250)}.{1 + (i % 250)}:15006";
    var key = SvidKey.CreateKey();
    var started = Stopwatch.GetTimestamp();
    using var response = await clients[replica].PostAsJsonAsync(Bootstrap.AttestPath,
        new AttestRequest(joinTokens[i], SvidKey.CreateSigningRequestPem(key, ids[i]), service, address), ContractsJsonContext.Default.AttestRequest, c);
    if (!response.IsSuccessStatusCode)
    {
        throw new InvalidOperationException($"attestation {i} at {bootstraps[replica]}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(c)}");
    }
    var attested = (await response.Content.ReadFromJsonAsync(ContractsJsonContext.Default.AttestResponse, c))!;
    attestLatencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    sims[i] = new SimulatedSidecar(i, ids[i], service, address, X509Svid.Create(attested.SvidChainPem, key, bundle, DateTimeOffset.UtcNow), grpcs[replica], bundle);
});
var attestSeconds = clock.Elapsed.TotalSeconds;
var attestCpu = ReplicaUsage.CpuSeconds(pids) - cpu;

// 3. Snapshot streams: every sidecar holds one; wait until each has its first snapshot.
clock.Restart();
foreach (var sim in sims)
{
    sim.OpenStream(stop.Token);
}
await WaitAsync(() => sims.All(static s => s.Version > 0), TimeSpan.FromSeconds(120), "every stream's first snapshot", sims);
var streamsSeconds = clock.Elapsed.TotalSeconds;
var rssStreams = ReplicaUsage.MiB(pids, "VmRSS");

// 4. Policy changes: each write, then the moment every stream has a newer version.
var perStream = new List<double>();
var allReached = new List<double>();
cpu = ReplicaUsage.CpuSeconds(pids);
for (var change = 1; change <= changes; change++)
{
    var before = sims.Max(static s => s.Version);
    await WaitAsync(() => sims.All(s => s.Version == before), TimeSpan.FromSeconds(30), "streams to settle", sims);
    var written = Stopwatch.GetTimestamp();
    await WritePolicyAsync(change);
    await WaitAsync(() => sims.All(s => s.Version > before), TimeSpan.FromSeconds(60), $"change {change} at every stream", sims);
    var latencies = sims.Select(s => Stopwatch.GetElapsedTime(written, s.FirstArrivalAbove(before)!.Value).TotalMilliseconds).ToList();
    perStream.AddRange(latencies);
    allReached.Add(latencies.Max());
    await Task.Delay(500);
}
var changeCpu = ReplicaUsage.CpuSeconds(pids) - cpu;

// 5. One renewal each, over the stream's channel.
cpu = ReplicaUsage.CpuSeconds(pids);
clock.Restart();
await Parallel.ForEachAsync(sims, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (sim, c) => await sim.RenewAsync(c));
var renewSeconds = clock.Elapsed.TotalSeconds;
var renewCpu = ReplicaUsage.CpuSeconds(pids) - cpu;

// 6. Flow-log ingest: logs written ahead, then every one of them uploaded at once.
var flowSidecars = int.Parse(options.GetValueOrDefault("--flow-sidecars", "0"), CultureInfo.InvariantCulture);
var flowReport = new Dictionary<string, object>();
if (flowSidecars > 0)
{
    var records = int.Parse(options.GetValueOrDefault("--flow-records", "50000"), CultureInfo.InvariantCulture);
    var storePids = options.TryGetValue("--store-pids", out var sp) ? sp.Split(',').Select(static p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray() : [];
    var logsDirectory = Directory.CreateTempSubdirectory("cp-scale-flows-");
    var logs = sims.Take(flowSidecars).Select(s => new SimulatedFlowLog(s.Id, s.Svid, Path.Combine(logsDirectory.FullName, $"sim-{s.Index}"))).ToArray();
    Parallel.ForEach(logs, log => log.Write(records));
    var replicaCpu = ReplicaUsage.CpuSeconds(pids);
    var storeCpu = ReplicaUsage.TreeCpuSeconds(storePids);
    clock.Restart();
    var uploads = await Task.WhenAll(sims.Take(flowSidecars).Zip(logs).Select(pair => Task.Run(() => pair.Second.UploadAsync(pair.First.Witness, stop.Token))));
    var seconds = clock.Elapsed.TotalSeconds;
    replicaCpu = ReplicaUsage.CpuSeconds(pids) - replicaCpu;
    storeCpu = ReplicaUsage.TreeCpuSeconds(storePids) - storeCpu;
    var lines = logs.Sum(static l => l.Lines);
    flowReport["flow_sidecars"] = flowSidecars;
    flowReport["flow_lines"] = lines;
    flowReport["flow_mib"] = Math.Round(logs.Sum(static l => l.Bytes) / 1048576.0, 1);
    flowReport["flow_seconds"] = Math.Round(seconds, 2);
    flowReport["flow_lines_per_second"] = Math.Round(lines / seconds);
    flowReport["flow_replica_cpu_s_per_10k_lines"] = Math.Round(replicaCpu / lines * 10_000, 4);
    flowReport["flow_store_cpu_s_per_10k_lines"] = Math.Round(storeCpu / lines * 10_000, 4);
    flowReport["flow_upload_p50_ms"] = Percentile(uploads.SelectMany(static u => u).Select(static s => s * 1000), 50);
    flowReport["flow_upload_p99_ms"] = Percentile(uploads.SelectMany(static u => u).Select(static s => s * 1000), 99);
    logsDirectory.Delete(recursive: true);
}

var report = new Dictionary<string, object>
{
    ["label"] = options["--label"],
    ["replicas"] = pids.Length,
    ["sidecars"] = sidecars,
    ["svids_per_second"] = Math.Round(sidecars / attestSeconds, 1),
    ["attest_p50_ms"] = Percentile(attestLatencies, 50),
    ["attest_p99_ms"] = Percentile(attestLatencies, 99),
    ["attest_cpu_s"] = Math.Round(attestCpu, 2),
    ["streams_up_s"] = Math.Round(streamsSeconds, 2),
    ["changes"] = changes,
    ["stream_p50_ms"] = Percentile(perStream, 50),
    ["stream_p99_ms"] = Percentile(perStream, 99),
    ["all_streams_p50_ms"] = Percentile(allReached, 50),
    ["all_streams_p99_ms"] = Percentile(allReached, 99),
    ["all_streams_max_ms"] = Math.Round(allReached.DefaultIfEmpty().Max(), 1),
    ["cpu_s_per_change"] = changes == 0 ? 0 : Math.Round(changeCpu / changes, 3),
    ["renewals_per_second"] = Math.Round(sidecars / renewSeconds, 1),
    ["renew_cpu_s"] = Math.Round(renewCpu, 2),
    ["rss_mib_with_streams"] = Math.Round(rssStreams, 1),
    ["rss_peak_mib"] = Math.Round(ReplicaUsage.MiB(pids, "VmHWM"), 1),
};
foreach (var (name, value) in flowReport)
{
    report[name] = value;
}
Console.WriteLine(JsonSerializer.Serialize(report));
await stop.CancelAsync();
foreach (var sim in sims)
{
    sim.Dispose();
}
return 0;

// A policy that selects every simulated sidecar, a little different each time, so each write is a new version.
async Task WritePolicyAsync(int change)
{
    var yaml = $"""
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: {"{"} name: scale-change, namespace: scale {"}"}
        spec:
          action: allow
          rules:
            - name: change-{change}
              from:
                - identity: {ids[change % ids.Length]}
        """;
    if (etcd is not null)
    {
        await etcd.PutAsync(EtcdKeys.Policy("scale.yaml"), yaml, CancellationToken.None);
    }
    else
    {
        SecureFile.WriteAtomically(Path.Combine(data!.PoliciesDirectory, "scale.yaml"), yaml, secret: false);
    }
}

static async Task WaitAsync(Func<bool> condition, TimeSpan timeout, string what, SimulatedSidecar[] sims)
{
    var deadline = Stopwatch.StartNew();
    while (!condition())
    {
        if (deadline.Elapsed > timeout)
        {
            var broken = sims.Where(static s => s.StreamError is not null).Take(3).Select(static s => $"sidecar {s.Index}: {s.StreamError}");
            throw new TimeoutException($"no {what} within {timeout.TotalSeconds:F0}s; {string.Join("; ", broken)}");
        }
        await Task.Delay(2);
    }
}

static double Percentile(IEnumerable<double> values, double percentile)
{
    var sorted = values.Order().ToArray();
    if (sorted.Length == 0)
    {
        return 0;
    }
    var rank = (int)Math.Ceiling(percentile / 100 * sorted.Length) - 1;
    return Math.Round(sorted[Math.Clamp(rank, 0, sorted.Length - 1)], 1);
}

static Dictionary<string, string> ParseOptions(string[] args)
{
    var options = new Dictionary<string, string>(StringComparer.Ordinal);
    for (var i = 0; i + 1 < args.Length; i += 2)
    {
        options[args[i]] = args[i + 1];
    }
    foreach (var required in new[] { "--label", "--sidecars", "--changes", "--bootstrap", "--grpc", "--bundle", "--store", "--pids" })
    {
        if (!options.ContainsKey(required))
        {
            Console.Error.WriteLine($"cp-scale: {required} is required");
            Environment.Exit(2);
        }
    }
    return options;
}
