using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>
/// The Kubernetes API's list and watch of AccessPolicy objects, pods and the control plane's ConfigMaps, answered from what the test queues
/// (responses in the API server's wire format, testdata/kubernetes), to any number of clients at once, as the
/// API server answers several control-plane replicas.
/// </summary>
public sealed class KubernetesApiReplay : IAsyncDisposable
{
    private WebApplication? _app;

    public ReplayedResource AccessPolicies { get; } = new("/apis/meshguard.io/v1alpha1/accesspolicies", "accesspolicies-list-page2.json");

    public ReplayedResource Pods { get; } = new("/api/v1/pods", null);

    public ReplayedResource ConfigMaps { get; } = new("/api/v1/namespaces/meshguard/configmaps", null);

    public ReplayedResource Namespaces { get; } = new("/api/v1/namespaces", null);

    /// <summary>ConfigMaps written by clients (POST, PUT), by "namespace/name", as the JSON they sent.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<string, string> WrittenConfigMaps { get; } = new();

    /// <summary>Each write, in order: "POST ns/name" or "PUT ns/name".</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Writes { get; } = new();

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
        _app = LoopbackApp.CreateBuilder().Build();
        _app.MapGet(AccessPolicies.Path, AccessPolicies.HandleAsync);
        _app.MapGet(Pods.Path, Pods.HandleAsync);
        _app.MapGet(ConfigMaps.Path, ConfigMaps.HandleAsync);
        _app.MapGet(Namespaces.Path, Namespaces.HandleAsync);
        _app.MapGet("/api/v1/namespaces/{ns}/configmaps/{name}", (string ns, string name) =>
            WrittenConfigMaps.TryGetValue($"{ns}/{name}", out var body)
                ? Results.Text(body, "application/json")
                : Results.Text($$"""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"{{name}}\" not found","reason":"NotFound","details":{"name":"{{name}}","kind":"configmaps"},"code":404}""", "application/json", statusCode: 404));
        _app.MapPost("/api/v1/namespaces/{ns}/configmaps", async (string ns, HttpRequest request) => await StoreAsync("POST", ns, null, request, 201));
        _app.MapPut("/api/v1/namespaces/{ns}/configmaps/{name}", async (string ns, string name, HttpRequest request) => await StoreAsync("PUT", ns, name, request, 200));
        Url = await LoopbackApp.StartAsync(_app);
        return Url;
    }

    private async Task<IResult> StoreAsync(string method, string ns, string? name, HttpRequest request, int status)
    {
        using var reader = new StreamReader(request.Body);
        var body = System.Text.Json.Nodes.JsonNode.Parse(await reader.ReadToEndAsync())!;
        name ??= (string?)body["metadata"]?["name"] ?? "";
        // As the API server does: a resourceVersion of its own on what it stored.
        body["metadata"]!["resourceVersion"] = (70000 + Writes.Count).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var text = body.ToJsonString();
        WrittenConfigMaps[$"{ns}/{name}"] = text;
        Writes.Enqueue($"{method} {ns}/{name}");
        return Results.Text(text, "application/json", statusCode: status);
    }

    public async ValueTask DisposeAsync()
    {
        AccessPolicies.Close();
        Pods.Close();
        ConfigMaps.Close();
        Namespaces.Close();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}

/// <summary>
/// One resource of the replayed API: lists served in turn (the last one again and again), the second page for
/// a continue token, and a watch stream that every open watch receives from the moment it connected, fed line
/// by line by the test and ended when the test says.
/// </summary>
public sealed class ReplayedResource(string path, string? secondPage)
{
    private readonly Lock _gate = new();
    private readonly List<string?> _events = [];
    private TaskCompletionSource _more = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _closed;

    public string Path { get; } = path;

    public Queue<string> Lists { get; } = new();

    public List<string> WatchVersions { get; } = [];

    public int ListRequests { get; private set; }

    public int ContinuedLists { get; private set; }

    public int FailedLists { get; private set; }

    /// <summary>While set, lists answer 500 as an overloaded API server does.</summary>
    public bool FailLists { get; set; }

    public ValueTask SendAsync(string line)
    {
        Append(line);
        return ValueTask.CompletedTask;
    }

    /// <summary>The server closes the open watches (as at their timeout, or after an ERROR event).</summary>
    public ValueTask EndWatchAsync()
    {
        Append(null);
        return ValueTask.CompletedTask;
    }

    private void Append(string? line)
    {
        TaskCompletionSource more;
        lock (_gate)
        {
            _events.Add(line);
            more = _more;
            _more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        more.TrySetResult();
    }

    internal void Close()
    {
        lock (_gate)
        {
            _closed = true;
        }
        Append(null);
    }

    internal async Task HandleAsync(HttpContext context)
    {
        var query = context.Request.Query;
        context.Response.ContentType = "application/json";
        if (query["watch"] is { Count: > 0 } watch && watch[0] is "true" or "1")
        {
            int cursor;
            lock (_gate)
            {
                WatchVersions.Add(query["resourceVersion"].ToString());
                cursor = _events.Count;
                if (_closed)
                {
                    return;
                }
            }
            await context.Response.StartAsync(context.RequestAborted);
            while (true)
            {
                string? line;
                Task more;
                lock (_gate)
                {
                    more = _more.Task;
                    if (cursor >= _events.Count)
                    {
                        line = "";
                    }
                    else
                    {
                        line = _events[cursor++];
                        if (line is null)
                        {
                            return;
                        }
                    }
                }
                if (line.Length == 0)
                {
                    await more.WaitAsync(context.RequestAborted);
                    continue;
                }
                await context.Response.WriteAsync(line + "\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        if (query["continue"].ToString() is { Length: > 0 } && secondPage is not null)
        {
            ContinuedLists++;
            await context.Response.WriteAsync(KubernetesApiReplay.Recorded(secondPage));
            return;
        }
        string? body;
        lock (_gate)
        {
            ListRequests++;
            body = FailLists ? null : Lists.Count > 1 ? Lists.Dequeue() : Lists.TryPeek(out var last) ? last : null;
            if (body is null)
            {
                FailedLists++;
            }
        }
        if (body is null)
        {
            context.Response.StatusCode = 500;
            await context.Response.WriteAsync("""{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","code":500}""");
            return;
        }
        await context.Response.WriteAsync(body);
    }
}
