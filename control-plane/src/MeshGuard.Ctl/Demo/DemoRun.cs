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

    public static async Task<int> RunAsync(string directory, bool serve, CancellationToken cancellation)
    {
        if (System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        await using var mesh = new LocalMesh(directory);
        try
        {
            var cp = await mesh.StartControlPlaneAsync(cancellation: cancellation);
            var started = new Dictionary<string, MeshService>();
            foreach (var name in Services)
            {
                started[name] = await mesh.StartServiceAsync(name, cancellation: cancellation);
            }
            Console.WriteLine($"control-plane data={cp.DataDirectory} bundle={cp.BundleFile} bootstrap=127.0.0.1:{cp.BootstrapPort} admin=127.0.0.1:{cp.AdminPort}");
            foreach (var name in Services)
            {
                var s = started[name];
                Console.WriteLine($"sidecar {name} inbound=127.0.0.1:{s.InboundPort} outbound=127.0.0.1:{s.OutboundPort} admin=127.0.0.1:{s.AdminPort}");
            }
            Console.WriteLine();

            var ok = true;
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
            ok &= await MeshCallAsync(client, started["frontend"], started["orders"], "/orders/42", cancellation);
            ok &= await MeshCallAsync(client, started["orders"], started["payments"], "/payments/charge", cancellation);
            ok &= await NoCertificateCallAsync(started["orders"], TrustBundle.Load(cp.BundleFile), cancellation);
            Console.WriteLine();
            Console.WriteLine(ok ? "demo: every call behaved as expected" : "demo: some calls did not behave as expected");
            Console.WriteLine($"demo: logs and state in {mesh.Directory}");

            if (serve)
            {
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

    /// <summary>caller's app -> caller's sidecar -> mTLS -> callee's sidecar -> callee's app.</summary>
    private static async Task<bool> MeshCallAsync(HttpClient client, MeshService caller, MeshService callee, string path, CancellationToken cancellation)
    {
        var url = new Uri($"http://127.0.0.1:{caller.AppPort}/call/{callee.Name}{path}");
        string outcome;
        var expected = false;
        try
        {
            var result = await client.GetStringAsync(url, cancellation);
            using var call = JsonDocument.Parse(result);
            var status = call.RootElement.GetProperty("status").GetInt32();
            var body = call.RootElement.TryGetProperty("body", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
            var seen = "(nothing)";
            if (status == 200 && body is not null)
            {
                using var echo = JsonDocument.Parse(body);
                seen = echo.RootElement.GetProperty("x_forwarded_client_cert").GetString() ?? "";
                var uri = seen.IndexOf("URI=", StringComparison.Ordinal);
                seen = uri >= 0 ? seen[(uri + 4)..] : seen;
            }
            expected = status == 200 && seen == caller.Identity.ToString();
            outcome = $"{(status == 200 ? "allowed" : "failed"),-8} {status}  {callee.Name} saw caller {seen}";
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException)
        {
            outcome = $"failed   {e.Message}";
        }
        Console.WriteLine($"{(expected ? "ok  " : "FAIL")} {caller.Name,-9} -> {callee.Name,-9} {outcome}");
        return expected;
    }

    /// <summary>A client with no certificate, straight at a sidecar's inbound port: refused at the handshake.</summary>
    private static async Task<bool> NoCertificateCallAsync(MeshService callee, TrustBundle bundle, CancellationToken cancellation)
    {
        // The client checks the server properly (it trusts the mesh bundle); it just has no SVID of its own.
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
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
