using Npgsql;

namespace MeshGuard.FlowStore;

/// <summary>
/// The <c>--flow-store</c> flag: <c>postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE</c> (or
/// <c>postgresql://</c>). Written back without its password, for logs and the start line.
/// </summary>
public sealed class FlowStoreLocation
{
    private FlowStoreLocation(NpgsqlConnectionStringBuilder connection, string display)
    {
        Connection = connection;
        Display = display;
    }

    public NpgsqlConnectionStringBuilder Connection { get; }

    /// <summary>The location with its password replaced by <c>***</c>.</summary>
    public string Display { get; }

    public override string ToString() => Display;

    /// <summary>The location, or null with <paramref name="error"/> saying what is wrong with the text.</summary>
    public static FlowStoreLocation? Parse(string text, out string error)
    {
        error = "";
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("postgres" or "postgresql"))
        {
            error = $"'{Redact(text)}': expected postgres://USER:PASSWORD@HOST:PORT/DATABASE";
            return null;
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (uri.Host.Length == 0 || database.Length == 0 || database.Contains('/', StringComparison.Ordinal))
        {
            error = $"'{Redact(text)}': a host and one database name are required (postgres://USER:PASSWORD@HOST:PORT/DATABASE)";
            return null;
        }
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host.Trim('[', ']'),
            Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port,
            Database = database,
            // Replicas hold a few connections each; a segment takes one for its transaction.
            MaxPoolSize = 16,
            Timeout = 10,
            CommandTimeout = 30,
            // PostgreSQL's JIT compiles the plan of any query it estimates dear (a page over millions of rows): 40-50 ms
            // of compiling for queries that run in a few through the indexes. The store's sessions go without it.
            // Minutes and hours are UTC ones, in every session: the edge counts are cut into them as they are
            // written and read back by them, whatever time zone the server was given.
            Options = "-c jit=off -c TimeZone=UTC",
        };
        var user = uri.UserInfo.Split(':', 2);
        if (user[0].Length > 0)
        {
            builder.Username = Uri.UnescapeDataString(user[0]);
        }
        if (user.Length == 2)
        {
            builder.Password = Uri.UnescapeDataString(user[1]);
        }
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var (key, value) = pair.Split('=', 2) is [var k, var v] ? (Uri.UnescapeDataString(k), Uri.UnescapeDataString(v)) : (pair, "");
            if (key == "sslmode" && Enum.TryParse<SslMode>(value, ignoreCase: true, out var mode))
            {
                builder.SslMode = mode;
            }
            else
            {
                error = $"'{Redact(text)}': unknown or bad option '{key}' (sslmode=disable|prefer|require|verify-ca|verify-full is the one taken)";
                return null;
            }
        }
        return new FlowStoreLocation(builder, Redact(text));
    }

    /// <summary>The text with the password of its user part, if any, replaced by <c>***</c>.</summary>
    private static string Redact(string text)
    {
        var scheme = text.IndexOf("://", StringComparison.Ordinal);
        var at = text.LastIndexOf('@');
        if (scheme < 0 || at < scheme)
        {
            return text;
        }
        var colon = text.IndexOf(':', scheme + 3);
        return colon > 0 && colon < at ? string.Concat(text.AsSpan(0, colon + 1), "***", text.AsSpan(at)) : text;
    }
}
