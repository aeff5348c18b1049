using Microsoft.Extensions.Logging;

namespace MeshGuard.Hosting;

/// <summary>One log line per event, UTC timestamps; framework chatter only from Warning up. Shared by meshguard-cp and meshguard-proxy.</summary>
internal static class ServerLogging
{
    public static void Configure(ILoggingBuilder logging)
    {
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Any level enabled here makes ASP.NET Core start an Activity and a log scope for every request, only
        // in case something logs: measurable per request in a proxy. This category's own messages are the
        // per-request "Request starting/finished" lines, which nobody wants from a sidecar.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        logging.AddFilter("Grpc", LogLevel.Warning);
        logging.AddFilter("Yarp", LogLevel.Warning);
        logging.AddFilter("System.Net.Http", LogLevel.Warning);
    }
}
