using System.Collections;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.Tests.Identity;

/// <summary>When a sidecar may do without the machine's CA store, and when the store stays (the rule behind SystemTrustStore).</summary>
public sealed class SystemTrustStoreTests
{
    private static Hashtable Environment(params (string Name, string Value)[] variables)
    {
        var environment = new Hashtable { ["PATH"] = "/usr/bin", ["HOME"] = "/" };
        foreach (var (name, value) in variables)
        {
            environment[name] = value;
        }
        return environment;
    }

    [Fact]
    public void WithoutOtlpOverTlsTheStoreIsNotNeeded()
    {
        Assert.Null(SystemTrustStore.ReasonToKeep(Environment()));
        Assert.Null(SystemTrustStore.ReasonToKeep(Environment(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"))));
        Assert.Null(SystemTrustStore.ReasonToKeep(Environment(("OTEL_EXPORTER_OTLP_ENDPOINT", ""))));
        Assert.Null(SystemTrustStore.ReasonToKeep(Environment(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "HTTP://collector:4318/v1/traces"))));
    }

    [Theory]
    [InlineData("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4317")]
    [InlineData("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://collector.example:4318/v1/logs")]
    [InlineData("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector.example:4317")]
    public void AnOtlpEndpointOverTlsKeepsTheStore(string name, string value)
    {
        Assert.Equal(name + " is not plain http", SystemTrustStore.ReasonToKeep(Environment((name, value))));
    }

    [Fact]
    public void WhereTheStoreIsMakesNothingNeedIt()
    {
        // Often set machine-wide; without an exporter over TLS nothing of the sidecar reads the store wherever it is.
        Assert.Null(SystemTrustStore.ReasonToKeep(Environment(("SSL_CERT_FILE", "/etc/corporate/ca.pem"), ("SSL_CERT_DIR", "/etc/corporate"))));
    }
}
