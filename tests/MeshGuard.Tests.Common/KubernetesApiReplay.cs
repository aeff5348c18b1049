using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>
/// The Kubernetes API's AccessPolicy list and watch, answered from what the test queues (responses in the API
/// server's wire format, testdata/kubernetes): lists in turn, the second page for a continue token, and a watch
/// stream the test feeds line by line and ends when it wants.
/// </summary>
public sealed class KubernetesApiReplay : IAsyncDisposable
{
    private const string Path = "/apis/meshguard.io/v1alpha1/accesspolicies";
    private WebApplication? _app;
    private readonly Channel<string?> _watch = Channel.CreateUnbounded<string?>();

    public Queue<string> Lists { get; } = new();

    public List<string> WatchVersions { get; } = [];

    public int ListRequests { get; private set; }

    public int ContinuedLists { get; private set; }

    public int FailedLists { get; private set; }

    public bool FailLists { get; set; }

    /// <summary>A response from testdata/kubernetes (copied beside the test assembly).</summary>
    public static string Recorded(string name) => File.ReadAllText(System.IO.Path.Combine(AppContext.BaseDirectory, "testdata", "kubernetes", name));

    /// <summary>A kubeconfig that points a client at this server.</summary>
    public string WriteKubeConfig(string path)
    {
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
              - name: replay
                cluster:
                  server: "{Url}"
            users:
              - name: meshguard-cp
                user:
                  token: replay-token
            contexts:
              - name: replay
                context:
                  cluster: replay
                  user: meshguard-cp
            current-context: replay
            """);
        return path;
    }

    public string Url { get; private set; } = "";

    public async Task<string> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _app = builder.Build();
        _app.MapGet(Path, HandleAsync);
        await _app.StartAsync();
        Url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return Url;
    }

    public ValueTask SendAsync(string line) => _watch.Writer.WriteAsync(line);

    /// <summary>The server closes the current watch (as at its timeout, or after an ERROR event).</summary>
    public ValueTask EndWatchAsync() => _watch.Writer.WriteAsync(null);

    private async Task HandleAsync(HttpContext context)
    {
        var query = context.Request.Query;
        context.Response.ContentType = "application/json";
        if (query["watch"] is { Count: > 0 } watch && watch[0] is "true" or "1")
        {
            lock (WatchVersions)
            {
                WatchVersions.Add(query["resourceVersion"].ToString());
            }
            await context.Response.StartAsync(context.RequestAborted);
            while (await _watch.Reader.ReadAsync(context.RequestAborted) is { } line)
            {
                await context.Response.WriteAsync(line + "\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
            return;
        }
        if (query["continue"].ToString() is { Length: > 0 })
        {
            ContinuedLists++;
            await context.Response.WriteAsync(Recorded("accesspolicies-list-page2.json"));
            return;
        }
        ListRequests++;
        if (FailLists || !Lists.TryDequeue(out var body))
        {
            FailedLists++;
            context.Response.StatusCode = 500;
            await context.Response.WriteAsync("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","code":500}""");
            return;
        }
        await context.Response.WriteAsync(body);
    }

    public async ValueTask DisposeAsync()
    {
        _watch.Writer.TryComplete();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
