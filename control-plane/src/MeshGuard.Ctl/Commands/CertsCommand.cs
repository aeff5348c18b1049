using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using MeshGuard.CommandLine;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl certs inspect FILE|--admin URL</c>: SPIFFE ID, serial, issuer and validity.</summary>
internal static class CertsCommand
{
    public static Command Create()
    {
        var file = new Argument<string?>("FILE") { Description = "PEM file (certificate or chain)", Arity = ArgumentArity.ZeroOrOne };
        var admin = CliOption.Text("--admin", "a sidecar's admin URL, e.g. http://127.0.0.1:15000");
        var inspect = new Command("inspect", "show the SVID in a PEM file or of a running sidecar") { file, admin };
        inspect.SetAction(async (parse, cancellation) => await Cli.RunAsync(async () =>
        {
            var path = parse.GetValue(file);
            var url = parse.GetValue(admin);
            if ((path is null) == (url is null))
            {
                throw new CliUsageException("give either FILE or --admin URL");
            }
            var pem = path is not null ? ReadFile(path) : await FetchFromAdminAsync(url!, cancellation);
            var chain = new X509Certificate2Collection();
            try
            {
                chain.ImportFromPem(pem);
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                throw new FormatException($"{path ?? url}: not a PEM certificate: {e.Message}", e);
            }
            if (chain.Count == 0)
            {
                throw new FormatException($"{path ?? url}: holds no certificate");
            }
            for (var i = 0; i < chain.Count; i++)
            {
                Print(chain[i], i);
            }
        }));
        return new Command("certs", "certificates") { inspect };
    }

    private static string ReadFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FormatException($"cannot read {path}: {e.Message}", e);
        }
    }

    private static async Task<string> FetchFromAdminAsync(string url, CancellationToken cancellation)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUri))
        {
            throw new CliUsageException($"--admin '{url}' is not a URL");
        }
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string json;
        try
        {
            json = await client.GetStringAsync(new Uri(baseUri, "/certs"), cancellation);
        }
        catch (HttpRequestException e)
        {
            throw new FormatException($"cannot read {url}/certs: {e.Message}", e);
        }
        using var document = JsonDocument.Parse(json);
        var pem = "";
        foreach (var element in document.RootElement.GetProperty("chain_pem").EnumerateArray())
        {
            pem += element.GetString() + "\n";
        }
        return pem;
    }

    private static void Print(X509Certificate2 certificate, int index)
    {
        var role = index == 0 ? (certificate.IsCertificateAuthority() ? "ca" : "leaf") : "chain";
        var uris = certificate.GetUriSans();
        Console.WriteLine($"[{index}] {role}");
        Console.WriteLine($"  spiffe_id:  {(uris.Count > 0 ? string.Join(", ", uris) : "(none)")}");
        Console.WriteLine($"  subject:    {certificate.Subject}");
        Console.WriteLine($"  serial:     {certificate.SerialNumber}");
        Console.WriteLine($"  issuer:     {certificate.Issuer}");
        Console.WriteLine($"  not_before: {certificate.NotBefore.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}");
        Console.WriteLine($"  not_after:  {certificate.NotAfter.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}");
    }
}
