using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using MeshGuard.Policy.Engine;

namespace MeshGuard.Proxy.Telemetry;

/// <summary>
/// Inbound authorization decisions counted by verdict, deciding policy and rule. A counter is made the
/// first time a (verdict, policy, rule) is seen; after that counting is one lookup and one increment.
/// </summary>
internal sealed class AuthorizationMetrics
{
    private static readonly System.Diagnostics.Metrics.Counter<long> Decisions =
        OpenTelemetrySetup.Meter.CreateCounter<long>("meshguard.authz.decisions", description: "Inbound authorization decisions by verdict and deciding policy and rule.");

    private readonly ConcurrentDictionary<(Verdict Verdict, string? Policy, string? Rule), Counter> _decisions = new();

    private sealed class Counter
    {
        public long Value;
    }

    public void Count(in Decision decision)
    {
        var counter = _decisions.GetOrAdd((decision.Verdict, decision.Policy, decision.Rule), static _ => new Counter());
        Interlocked.Increment(ref counter.Value);
        if (Decisions.Enabled)
        {
            Decisions.Add(1, new KeyValuePair<string, object?>("decision", decision.VerdictText),
                new KeyValuePair<string, object?>("policy", decision.Policy ?? "default-deny"), new KeyValuePair<string, object?>("rule", decision.Rule ?? ""));
        }
    }

    public void WriteTo(StringBuilder text)
    {
        text.Append("# HELP meshguard_authz_decisions_total Inbound authorization decisions by verdict and deciding policy and rule.\n");
        text.Append("# TYPE meshguard_authz_decisions_total counter\n");
        foreach (var ((verdict, policy, rule), counter) in _decisions)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"meshguard_authz_decisions_total{{decision=\"{Decision.Text(verdict)}\",policy=\"{policy ?? "default-deny"}\",rule=\"{rule ?? ""}\"}} {Interlocked.Read(ref counter.Value)}\n");
        }
    }
}
