using MeshGuard.ControlPlane.Common.DataDir;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// The service bindings in force (secure naming): from <c>service-bindings.txt</c> in the data directory, or with
/// etcd from the text every replica reads there (EtcdMeshSync offers it). A text with a bad line is refused and the
/// previous bindings stay.
/// </summary>
internal sealed partial class ServiceBindingStore : BackgroundService
{
    private readonly WatchedDocument<ServiceBindings> _bindings;
    private readonly ILogger<ServiceBindingStore> _logger;
    private readonly bool _fromFile;

    public ServiceBindingStore(DataDirectory data, TimeProvider time, ILogger<ServiceBindingStore> logger, bool fromFile = true)
    {
        _bindings = new WatchedDocument<ServiceBindings>(data.ServiceBindings, ServiceBindings.None, ServiceBindings.Parse, time);
        _logger = logger;
        _fromFile = fromFile;
        if (fromFile && _bindings.LoadFile().Count > 0)
        {
            LogLoaded(logger, Current.Count);
        }
    }

    public ServiceBindings Current => _bindings.Current;

    public Task Changed => _bindings.Changed;

    /// <summary>A new text of the bindings (from etcd): in force if it parses, refused whole otherwise.</summary>
    public void Offer(string text, string source) => Report(Current, _bindings.Offer(text, source));

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _fromFile ? _bindings.WatchFileAsync(Report, stoppingToken) : Task.CompletedTask;

    private void Report(ServiceBindings bindings, string? error)
    {
        if (error is not null)
        {
            LogRefused(_logger, error, bindings.Count);
        }
        else
        {
            LogLoaded(_logger, bindings.Count);
        }
    }

    [LoggerMessage(EventId = 64, Level = LogLevel.Information, Message = "service bindings in force: {Count} services bound to identities beyond their own")]
    private static partial void LogLoaded(ILogger logger, int count);

    [LoggerMessage(EventId = 65, Level = LogLevel.Error, Message = "service bindings refused: {Error}; the previous {Count} bindings stay in force")]
    private static partial void LogRefused(ILogger logger, string error, int count);
}
