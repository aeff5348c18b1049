using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Demo;

/// <summary>
/// <c>meshctl demo</c>: starts the local mesh under .meshguard-demo/ (cleared first, kept afterwards), makes
/// the calls that show what the mesh does, prints one line per call, and stops everything. Exit 0 only if
/// every call behaved as expected. With --serve the mesh keeps running until Ctrl-C or SIGTERM.
/// </summary>
internal static class DemoRun
{
    private static readonly string[] Services = ["frontend", "orders", "payments"];

    public static async Task<int> RunAsync(string directory, string policies, bool serve, CancellationToken cancellation)
    {
        if (!System.IO.Directory.Exists(policies))
        {
            await Console.Error.WriteLineAsync($"meshctl demo: policy directory {policies} does not exist (run from the repository root, or give --policies)");
            return 2;
        }
        if (System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        await using var mesh = new LocalMesh(directory);
        try
        {
            var cp = await mesh.StartControlPlaneAsync(policiesFrom: policies, cancellation: cancellation);
            var started = new Dictionary<string, MeshService>();
            foreach (var name in Services)
            {
                started[name] = await mesh.StartServiceAsync(name, cancellation: cancellation);
            }
            Console.WriteLine($"control-plane data={cp.DataDirectory} bundle={cp.BundleFile} bootstrap=127.0.0.1:{cp.BootstrapPort} admin=127.0.0.1:{cp.AdminPort} webhook=127.0.0.1:{cp.WebhookPort}");
            foreach (var name in Services)
            {
                var s = started[name];
                Console.WriteLine($"sidecar {name} inbound=127.0.0.1:{s.InboundPort} outbound=127.0.0.1:{s.OutboundPort} admin=127.0.0.1:{s.AdminPort} metrics=127.0.0.1:{s.MetricsPort} flows={s.FlowDirectory}");
            }
            Console.WriteLine($"policies: {string.Join(", ", System.IO.Directory.GetFiles(mesh.Data.PoliciesDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal))} (mesh default: deny)");
            Console.WriteLine();

            var ok = true;
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
            ok &= await MeshCallAsync(client, started["frontend"], started["orders"], "GET", "/orders/42", 200, cancellation);
            ok &= await MeshCallAsync(client, started["frontend"], started["orders"], "POST", "/orders", 200, cancellation);
            ok &= await MeshCallAsync(client, started["frontend"], started["orders"], "DELETE", "/orders/42", 403, cancellation);
            ok &= await MeshCallAsync(client, started["payments"], started["orders"], "GET", "/orders/42", 403, cancellation);
            ok &= await MeshCallAsync(client, started["orders"], started["payments"], "POST", "/charge", 200, cancellation);
            ok &= await MeshCallAsync(client, started["orders"], started["payments"], "GET", "/refunds", 403, cancellation);
            ok &= await NoCertificateCallAsync(started["orders"], TrustBundle.Load(cp.BundleFile), cancellation);
            Console.WriteLine();
            ok &= await PrintFlowsAsync(started.Values, TrustBundle.Load(cp.BundleFile), cp.BundleFile, cancellation);
            Console.WriteLine();
            Console.WriteLine(ok ? "demo: every call behaved as expected" : "demo: some calls did not behave as expected");
            Console.WriteLine($"demo: logs and state in {mesh.Directory}");

            if (serve)
            {
                Console.WriteLine($"demo: reviewer's console: `meshctl console url --data {mesh.Data.Root}` prints a one-time login URL (the sidecars upload their flow logs within 5 s)");
                Console.WriteLine("demo: mesh running; Ctrl-C to stop");
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellation);
                }
                catch (OperationCanceledException)
                {
                }
                Console.WriteLine("demo: stopping every process (SIGTERM)");
            }
            return ok ? 0 : 1;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or FileNotFoundException)
        {
            await Console.Error.WriteLineAsync($"meshctl demo: {e.Message}");
            return 1;
        }
    }

    /// <summary>
    /// caller's app -> caller's sidecar -> mTLS -> callee's sidecar (authorization) -> callee's app. The line
    /// printed names the policy and rule that decided, as the callee's sidecar reports on /decisions.
    /// </summary>
    private static async Task<bool> MeshCallAsync(
        HttpClient client, MeshService caller, MeshService callee, string method, string path, int expectedStatus, CancellationToken cancellation)
    {
        var url = new Uri($"http://127.0.0.1:{caller.AppPort}/call/{callee.Name}{path}?method={method}");
        var status = 0;
        var seen = "";
        string? error = null;
        try
        {
            using var call = JsonDocument.Parse(await client.GetStringAsync(url, cancellation));
            status = call.RootElement.GetProperty("status").GetInt32();
            if (call.RootElement.GetProperty("error").GetString() is { } e)
            {
                error = e;
            }
            if (status == 200 && call.RootElement.GetProperty("body").GetString() is { } body)
            {
                using var echo = JsonDocument.Parse(body);
                var xfcc = echo.RootElement.GetProperty("x_forwarded_client_cert").GetString() ?? "";
                var uri = xfcc.IndexOf("URI=", StringComparison.Ordinal);
                seen = uri >= 0 ? xfcc[(uri + 4)..] : xfcc;
            }
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            error = e.Message;
        }
        var decision = await FindDecisionAsync(client, callee, caller.Identity.ToString(), method, path, cancellation);
        var expected = status == expectedStatus && (status != 200 || seen == caller.Identity.ToString()) && decision is not null;
        var outcome = status switch
        {
            200 => "allowed",
            403 => "denied ",
            _ => "failed ",
        };
        var by = decision is null ? "(no decision found)" : Describe(decision.Value);
        Console.WriteLine($"{(expected ? "ok  " : "FAIL")} {caller.Name,-9} -> {callee.Name,-9} {method,-6} {path,-11} {status} {outcome} {by}{(error is null ? "" : $" error: {error}")}");
        return expected;
    }

    private static string Describe(JsonElement decision)
    {
        var policy = decision.GetProperty("policy").GetString();
        var rule = decision.GetProperty("rule").GetString();
        var text = policy is null ? "by default deny (no allow rule matched)" : $"by {policy} rule {rule}";
        if (decision.TryGetProperty("audit_decision", out var audit) && audit.GetString() is { } auditDecision)
        {
            text += $"; audit would {auditDecision}";
            if (decision.GetProperty("audit_policy").GetString() is { } auditPolicy)
            {
                text += $" ({auditPolicy} rule {decision.GetProperty("audit_rule").GetString()})";
            }
        }
        return text;
    }

    /// <summary>The callee sidecar's newest decision about this caller, method and path.</summary>
    private static async Task<JsonElement?> FindDecisionAsync(HttpClient client, MeshService callee, string caller, string method, string path, CancellationToken cancellation)
    {
        try
        {
            using var decisions = JsonDocument.Parse(await client.GetStringAsync(new Uri($"http://127.0.0.1:{callee.AdminPort}/decisions"), cancellation));
            foreach (var decision in decisions.RootElement.EnumerateArray())
            {
                if (decision.GetProperty("source_id").GetString() == caller && decision.GetProperty("method").GetString() == method && decision.GetProperty("path").GetString() == path)
                {
                    return decision.Clone();
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or JsonException)
        {
        }
        return null;
    }

    /// <summary>
    /// The flow records of the calls, as the sidecars wrote them (both sides, joined by request id), then
    /// the same check as <c>meshctl flows verify</c> on each sidecar's log.
    /// </summary>
    private static async Task<bool> PrintFlowsAsync(IEnumerable<MeshService> services, TrustBundle bundle, string bundleFile, CancellationToken cancellation)
    {
        // Records reach disk from a background queue; give it a moment.
        await Task.Delay(500, cancellation);
        var records = new List<JsonElement>();
        foreach (var service in services)
        {
            records.AddRange(FlowLog.FlowLogReader.Records(service.FlowDirectory!).Where(static r => FlowLog.FlowLogReader.Text(r, "kind") == "flow"));
        }
        Console.WriteLine("flow records (both sidecars of each call, joined by request id):");
        foreach (var record in records.OrderBy(static r => FlowLog.FlowLogReader.Text(r, "time"), StringComparer.Ordinal))
        {
            Console.WriteLine("  " + Commands.FlowsCommand.Row(record) + $" id={FlowLog.FlowLogReader.Text(record, "request_id")?[..8]}");
        }
        Console.WriteLine();
        var ok = true;
        foreach (var service in services)
        {
            var report = FlowLog.FlowLogVerifier.Verify(service.FlowDirectory!, bundle);
            ok &= report.IsOk;
            Console.WriteLine($"{(report.IsOk ? "ok  " : "FAIL")} meshctl flows verify {service.FlowDirectory} --bundle {bundleFile}: {(report.IsOk ? "OK" : string.Join("; ", report.Problems))}, {report.Flows} flow records, {report.Checkpoints} signed");
        }
        return ok;
    }

    /// <summary>A client with no certificate, straight at a sidecar's inbound port: refused at the handshake.</summary>
    private static async Task<bool> NoCertificateCallAsync(MeshService callee, TrustBundle bundle, CancellationToken cancellation)
    {
        // The client checks the server properly (it trusts the mesh bundle); it just has no SVID of its own.
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                CertificateChainPolicy = SvidTls.OfflineChainPolicy(),
                RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
                    certificate is X509Certificate2 server &&
                    X509SvidVerifier.Verify(server, chain?.ChainPolicy.ExtraStore, bundle, DateTimeOffset.UtcNow).IsValid,
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        string outcome;
        bool expected;
        try
        {
            using var response = await client.GetAsync(new Uri($"https://127.0.0.1:{callee.InboundPort}/orders/42"), cancellation);
            outcome = $"reached the app: {(int)response.StatusCode}";
            expected = false;
        }
        catch (HttpRequestException e)
        {
            outcome = $"refused  TLS handshake failed ({e.InnerException?.GetType().Name ?? e.GetType().Name}); the app saw nothing";
            expected = true;
        }
        Console.WriteLine($"{(expected ? "ok  " : "FAIL")} {"no-cert",-9} -> {callee.Name,-9} {outcome}");
        return expected;
    }
}
