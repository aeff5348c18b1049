namespace MeshGuard.Proxy.Protocols;

/// <summary>
/// An answer the sidecar gives itself instead of the destination's: a short text body for HTTP clients, the
/// matching gRPC status for gRPC clients. Once the response has started, the only honest signal left is to
/// abort the exchange.
/// </summary>
internal static class Refusal
{
    public static Task WriteAsync(HttpContext context, int status, string message)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }
        response.Clear();
        if (GrpcStatus.IsGrpc(context.Request))
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = GrpcStatus.ContentType;
            response.Headers[GrpcStatus.StatusHeader] = GrpcStatus.FromHttpStatus(status);
            response.Headers[GrpcStatus.MessageHeader] = GrpcStatus.EncodeMessage(message);
            return Task.CompletedTask;
        }
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        return response.WriteAsync(message);
    }
}
