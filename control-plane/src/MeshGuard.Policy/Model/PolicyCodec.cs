using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshGuard.Policy.Model;

/// <summary>
/// The canonical JSON form of a policy set: what the control plane puts in a snapshot for a sidecar and
/// in its state directory for meshctl. Reading it checks every value again, as the parser does.
/// </summary>
public static class PolicyCodec
{
    public static byte[] Serialize(IEnumerable<AccessPolicy> policies)
    {
        var documents = new List<PolicyDocument>();
        foreach (var policy in policies)
        {
            documents.Add(new PolicyDocument(
                policy.Name, policy.Namespace, policy.ServiceAccount,
                policy.Action == PolicyAction.Allow ? "allow" : "deny",
                policy.Mode == PolicyMode.Enforce ? "enforce" : "audit",
                policy.Rules.Select(static r => new RuleDocument(
                    r.Name,
                    r.From.Select(static f => new SourceDocument(f.Identity, f.Namespace)).ToList(),
                    r.To.Select(static t => new DestinationDocument([.. t.Ports], [.. t.Methods], t.Paths.Select(static p => p.Text).ToList())).ToList(),
                    r.When.Select(static c => new ConditionDocument(c.Header, [.. c.Values])).ToList())).ToList(),
                policy.Location?.File));
        }
        return JsonSerializer.SerializeToUtf8Bytes(documents, PolicyJsonContext.Default.ListPolicyDocument);
    }

    public static IReadOnlyList<AccessPolicy> Deserialize(ReadOnlySpan<byte> json)
    {
        List<PolicyDocument>? documents;
        try
        {
            documents = JsonSerializer.Deserialize(json, PolicyJsonContext.Default.ListPolicyDocument);
        }
        catch (JsonException e)
        {
            throw new FormatException($"policy set is not valid JSON: {e.Message}", e);
        }
        var policies = new List<AccessPolicy>();
        foreach (var d in documents ?? [])
        {
            policies.Add(new AccessPolicy
            {
                Name = Required(d.Name, "name"),
                Namespace = Required(d.Namespace, "namespace"),
                ServiceAccount = d.ServiceAccount,
                Action = d.Action switch { "allow" => PolicyAction.Allow, "deny" => PolicyAction.Deny, _ => throw new FormatException($"bad action '{d.Action}'") },
                Mode = d.Mode switch { "enforce" => PolicyMode.Enforce, "audit" => PolicyMode.Audit, _ => throw new FormatException($"bad mode '{d.Mode}'") },
                Rules = (d.Rules ?? []).Select(static r => new PolicyRule
                {
                    Name = Required(r.Name, "rule name"),
                    From = (r.From ?? []).Select(static f => f.Identity is not null && Spiffe.SpiffeId.TryParse(f.Identity, out _, out _) || f.Namespace is not null
                        ? new PolicySource { Identity = f.Identity, Namespace = f.Identity is null ? f.Namespace : null }
                        : throw new FormatException("a source needs a valid identity or a namespace")).ToList(),
                    To = (r.To ?? []).Select(static t => new PolicyDestination
                    {
                        Ports = t.Ports ?? [],
                        Methods = t.Methods ?? [],
                        Paths = (t.Paths ?? []).Select(static p => PathPattern.TryParse(p, out var pattern, out var error) ? pattern! : throw new FormatException(error)).ToList(),
                    }).ToList(),
                    When = (r.When ?? []).Select(static c => new HeaderCondition { Header = Required(c.Header, "header"), Values = c.Values ?? [] }).ToList(),
                }).ToList(),
                Location = d.File is null ? null : new PolicyLocation(d.File, 0, 0),
            });
        }
        return policies;
    }

    private static string Required(string? value, string what) =>
        string.IsNullOrEmpty(value) ? throw new FormatException($"policy {what} is missing") : value;
}

internal sealed record PolicyDocument(
    [property: JsonPropertyName("name")] string? Name,
    [property: JsonPropertyName("namespace")] string? Namespace,
    [property: JsonPropertyName("service_account")] string? ServiceAccount,
    [property: JsonPropertyName("action")] string? Action,
    [property: JsonPropertyName("mode")] string? Mode,
    [property: JsonPropertyName("rules")] List<RuleDocument>? Rules,
    [property: JsonPropertyName("file")] string? File);

internal sealed record RuleDocument(
    [property: JsonPropertyName("name")] string? Name,
    [property: JsonPropertyName("from")] List<SourceDocument>? From,
    [property: JsonPropertyName("to")] List<DestinationDocument>? To,
    [property: JsonPropertyName("when")] List<ConditionDocument>? When);

internal sealed record SourceDocument(
    [property: JsonPropertyName("identity")] string? Identity,
    [property: JsonPropertyName("namespace")] string? Namespace);

internal sealed record DestinationDocument(
    [property: JsonPropertyName("ports")] List<int>? Ports,
    [property: JsonPropertyName("methods")] List<string>? Methods,
    [property: JsonPropertyName("paths")] List<string>? Paths);

internal sealed record ConditionDocument(
    [property: JsonPropertyName("header")] string? Header,
    [property: JsonPropertyName("values")] List<string>? Values);

[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<PolicyDocument>))]
internal sealed partial class PolicyJsonContext : JsonSerializerContext;
