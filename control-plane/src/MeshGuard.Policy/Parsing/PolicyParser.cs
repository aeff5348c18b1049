using System.Globalization;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MeshGuard.Policy.Parsing;

/// <summary>
/// Reads AccessPolicy YAML (several documents per file) and validates it in one pass, collecting every
/// mistake with its line and column. A file with any mistake yields no policies: it is refused whole.
/// </summary>
public sealed class PolicyParser
{
    public const string ApiVersion = "meshguard.io/v1alpha1";
    public const string Kind = "AccessPolicy";
    public const int MaxFileBytes = 1024 * 1024;

    private static readonly IReadOnlySet<string> Methods = MeshGuard.Policy.Requests.RequestMethod.Standard;

    private readonly string _file;
    private readonly List<PolicyError> _errors = [];

    private PolicyParser(string file) => _file = file;

    /// <summary>Parses <paramref name="text"/>; <paramref name="file"/> names it in errors.</summary>
    public static PolicyFileResult Parse(string text, string file)
    {
        var parser = new PolicyParser(file);
        var policies = parser.ParseAll(text);
        return parser._errors.Count == 0
            ? new PolicyFileResult(file, policies, [])
            : new PolicyFileResult(file, [], parser._errors);
    }

    private List<AccessPolicy> ParseAll(string text)
    {
        var policies = new List<AccessPolicy>();
        if (text.Length > MaxFileBytes)
        {
            Error(1, 1, $"file is larger than {MaxFileBytes} bytes");
            return policies;
        }
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            Error(e.Start.Line, e.Start.Column, "not valid YAML: " + (e.InnerException?.Message ?? e.Message));
            return policies;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // The YAML reader fails these ways on some malformed input (found by fuzzing), without a position.
            Error(1, 1, "not valid YAML (the reader could not say where)");
            return policies;
        }
        foreach (var document in stream.Documents)
        {
            if (document.RootNode is YamlScalarNode { Value: null or "" })
            {
                continue; // an empty document between separators
            }
            var policy = ParsePolicy(document.RootNode);
            if (policy is not null)
            {
                policies.Add(policy);
            }
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var policy in policies)
        {
            if (!seen.Add(policy.Id))
            {
                Error(policy.Location!.Line, policy.Location.Column, $"duplicate policy name '{policy.Id}' in this file");
            }
        }
        return policies;
    }

    private AccessPolicy? ParsePolicy(YamlNode root)
    {
        if (root is not YamlMappingNode map)
        {
            Error(root, "a policy document must be a mapping");
            return null;
        }
        var fields = Fields(map, "document", "apiVersion", "kind", "metadata", "spec");
        var apiVersion = Scalar(fields, map, "apiVersion", required: true);
        if (apiVersion is not null && apiVersion.Value.Text != ApiVersion)
        {
            Error(apiVersion.Value.Node, $"apiVersion must be {ApiVersion}");
        }
        var kind = Scalar(fields, map, "kind", required: true);
        if (kind is not null && kind.Value.Text != Kind)
        {
            Error(kind.Value.Node, $"kind must be {Kind}");
        }

        string? name = null;
        string? ns = null;
        if (Mapping(fields, map, "metadata", required: true) is { } metadata)
        {
            var meta = Fields(metadata, "metadata", "name", "namespace");
            name = DnsName(Scalar(meta, metadata, "name", required: true), "metadata.name", 253);
            ns = DnsName(Scalar(meta, metadata, "namespace", required: true), "metadata.namespace", 63);
        }

        string? serviceAccount = null;
        var action = PolicyAction.Allow;
        var mode = PolicyMode.Enforce;
        var rules = new List<PolicyRule>();
        if (Mapping(fields, map, "spec", required: true) is { } spec)
        {
            var specFields = Fields(spec, "spec", "selector", "action", "mode", "rules");
            if (Mapping(specFields, spec, "selector", required: false) is { } selector)
            {
                var selectorFields = Fields(selector, "selector", "serviceAccount");
                serviceAccount = DnsName(Scalar(selectorFields, selector, "serviceAccount", required: false), "selector.serviceAccount", 253);
            }
            action = Enum(Scalar(specFields, spec, "action", required: true), "action", PolicyAction.Allow, ("allow", PolicyAction.Allow), ("deny", PolicyAction.Deny));
            mode = Enum(Scalar(specFields, spec, "mode", required: false), "mode", PolicyMode.Enforce, ("enforce", PolicyMode.Enforce), ("audit", PolicyMode.Audit));
            if (Sequence(specFields, "rules") is { } ruleNodes)
            {
                var ruleNames = new HashSet<string>(StringComparer.Ordinal);
                for (var i = 0; i < ruleNodes.Children.Count; i++)
                {
                    var rule = ParseRule(ruleNodes.Children[i], i);
                    if (rule is null)
                    {
                        continue;
                    }
                    if (!ruleNames.Add(rule.Name))
                    {
                        Error(ruleNodes.Children[i], $"duplicate rule name '{rule.Name}'");
                    }
                    rules.Add(rule);
                }
            }
        }
        if (name is null || ns is null)
        {
            return null;
        }
        return new AccessPolicy
        {
            Name = name,
            Namespace = ns,
            ServiceAccount = serviceAccount,
            Action = action,
            Mode = mode,
            Rules = rules,
            Location = new PolicyLocation(_file, map.Start.Line, map.Start.Column),
        };
    }

    private PolicyRule? ParseRule(YamlNode node, int index)
    {
        if (node is not YamlMappingNode map)
        {
            Error(node, "a rule must be a mapping with from, to and when");
            return null;
        }
        var fields = Fields(map, "rule", "name", "from", "to", "when");
        var name = Scalar(fields, map, "name", required: false)?.Text ?? $"rules[{index}]";

        var from = new List<PolicySource>();
        if (NonEmptySequence(fields, map, "from", "from must list at least one caller (identity or namespace)") is { } fromNodes)
        {
            foreach (var child in fromNodes.Children)
            {
                if (ParseSource(child) is { } source)
                {
                    from.Add(source);
                }
            }
        }

        var to = new List<PolicyDestination>();
        if (Sequence(fields, "to") is { } toNodes)
        {
            foreach (var child in toNodes.Children)
            {
                if (ParseDestination(child) is { } destination)
                {
                    to.Add(destination);
                }
            }
        }

        var when = new List<HeaderCondition>();
        if (Sequence(fields, "when") is { } whenNodes)
        {
            foreach (var child in whenNodes.Children)
            {
                if (ParseCondition(child) is { } condition)
                {
                    when.Add(condition);
                }
            }
        }
        return new PolicyRule { Name = name, From = from, To = to, When = when };
    }

    private PolicySource? ParseSource(YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            Error(node, "a from entry must be a mapping: { identity: spiffe://... } or { namespace: ... }");
            return null;
        }
        var fields = Fields(map, "from entry", "identity", "namespace");
        var identity = Scalar(fields, map, "identity", required: false);
        var ns = Scalar(fields, map, "namespace", required: false);
        if ((identity is null) == (ns is null))
        {
            Error(map, "a from entry needs exactly one of identity or namespace");
            return null;
        }
        if (identity is { } id)
        {
            if (!SpiffeId.TryParse(id.Text, out var parsed, out var error))
            {
                Error(id.Node, $"identity '{id.Text}' is not a SPIFFE ID: {error}");
                return null;
            }
            if (parsed.Path.Length == 0)
            {
                Error(id.Node, $"identity '{id.Text}' names a trust domain, not a workload");
                return null;
            }
            return new PolicySource { Identity = parsed.ToString() };
        }
        var name = DnsName(ns, "from.namespace", 63);
        return name is null ? null : new PolicySource { Namespace = name };
    }

    private PolicyDestination? ParseDestination(YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            Error(node, "a to entry must be a mapping with ports, methods and paths");
            return null;
        }
        var fields = Fields(map, "to entry", "ports", "methods", "paths");
        var ports = new List<int>();
        if (Sequence(fields, "ports") is { } portNodes)
        {
            foreach (var child in portNodes.Children)
            {
                if (child is YamlScalarNode { Value: { } text } &&
                    int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535)
                {
                    ports.Add(port);
                }
                else
                {
                    Error(child, $"port '{(child as YamlScalarNode)?.Value}' is out of range (1-65535)");
                }
            }
        }
        var methods = new List<string>();
        if (Sequence(fields, "methods") is { } methodNodes)
        {
            foreach (var child in methodNodes.Children)
            {
                var method = (child as YamlScalarNode)?.Value ?? "";
                if (Methods.Contains(method))
                {
                    methods.Add(method);
                }
                else
                {
                    Error(child, Methods.Contains(method.ToUpperInvariant())
                        ? $"method '{method}' must be upper-case: {method.ToUpperInvariant()}"
                        : $"unknown method '{method}' (one of {string.Join(", ", Methods)})");
                }
            }
        }
        var paths = new List<PathPattern>();
        if (Sequence(fields, "paths") is { } pathNodes)
        {
            foreach (var child in pathNodes.Children)
            {
                if (PathPattern.TryParse((child as YamlScalarNode)?.Value ?? "", out var pattern, out var error))
                {
                    paths.Add(pattern!);
                }
                else
                {
                    Error(child, error!);
                }
            }
        }
        return new PolicyDestination { Ports = ports, Methods = methods, Paths = paths };
    }

    private HeaderCondition? ParseCondition(YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            Error(node, "a when entry must be a mapping: { header: name, values: [...] }");
            return null;
        }
        var fields = Fields(map, "when entry", "header", "values");
        var header = Scalar(fields, map, "header", required: true);
        if (header is { } h && !IsHeaderName(h.Text))
        {
            Error(h.Node, $"header '{h.Text}' is not a valid header name");
            header = null;
        }
        var values = new List<string>();
        if (NonEmptySequence(fields, map, "values", "values must list at least one value") is { } valueNodes)
        {
            foreach (var child in valueNodes.Children)
            {
                if (child is YamlScalarNode { Value: { } value })
                {
                    values.Add(value);
                }
                else
                {
                    Error(child, "a header value must be a string");
                }
            }
        }
        return header is null ? null : new HeaderCondition { Header = header.Value.Text.ToLowerInvariant(), Values = values };
    }

    // Reads a mapping's keys, reporting unknown and repeated ones.
    private Dictionary<string, (YamlScalarNode Key, YamlNode Value)> Fields(YamlMappingNode map, string where, params string[] known)
    {
        var fields = new Dictionary<string, (YamlScalarNode, YamlNode)>(StringComparer.Ordinal);
        foreach (var (keyNode, value) in map.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key } scalar)
            {
                Error(keyNode, $"a key in {where} must be a plain name");
                continue;
            }
            if (Array.IndexOf(known, key) < 0)
            {
                Error(keyNode, $"unknown field '{key}' in {where} (known: {string.Join(", ", known)})");
                continue;
            }
            if (!fields.TryAdd(key, (scalar, value)))
            {
                Error(keyNode, $"field '{key}' appears twice in {where}");
            }
        }
        return fields;
    }

    private (string Text, YamlNode Node)? Scalar(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> fields, YamlMappingNode parent, string key, bool required)
    {
        if (!fields.TryGetValue(key, out var field))
        {
            if (required)
            {
                Error(parent, $"missing required field '{key}'");
            }
            return null;
        }
        if (field.Value is not YamlScalarNode { Value: { Length: > 0 } text })
        {
            Error(field.Value, $"'{key}' must be a non-empty value");
            return null;
        }
        return (text, field.Value);
    }

    private YamlMappingNode? Mapping(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> fields, YamlMappingNode parent, string key, bool required)
    {
        if (!fields.TryGetValue(key, out var field))
        {
            if (required)
            {
                Error(parent, $"missing required field '{key}'");
            }
            return null;
        }
        if (field.Value is not YamlMappingNode map)
        {
            Error(field.Value, $"'{key}' must be a mapping");
            return null;
        }
        return map;
    }

    // A list that must hold something: missing or empty is the error given.
    private YamlSequenceNode? NonEmptySequence(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> fields, YamlMappingNode parent, string key, string whenEmpty)
    {
        var nodes = Sequence(fields, key);
        if (nodes is null || nodes.Children.Count == 0)
        {
            Error(nodes ?? (YamlNode)parent, whenEmpty);
            return null;
        }
        return nodes;
    }

    private YamlSequenceNode? Sequence(Dictionary<string, (YamlScalarNode Key, YamlNode Value)> fields, string key)
    {
        if (!fields.TryGetValue(key, out var field))
        {
            return null;
        }
        if (field.Value is not YamlSequenceNode sequence)
        {
            Error(field.Value, $"'{key}' must be a list");
            return null;
        }
        return sequence;
    }

    private T Enum<T>((string Text, YamlNode Node)? value, string key, T fallback, params (string Text, T Value)[] choices)
    {
        if (value is not { } v)
        {
            return fallback;
        }
        foreach (var (text, choice) in choices)
        {
            if (text == v.Text)
            {
                return choice;
            }
        }
        Error(v.Node, $"{key} must be one of {string.Join(", ", choices.Select(c => c.Text))}, not '{v.Text}'");
        return fallback;
    }

    private string? DnsName((string Text, YamlNode Node)? value, string key, int maxLength)
    {
        if (value is not { } v)
        {
            return null;
        }
        var text = v.Text;
        var valid = text.Length <= maxLength && (char.IsAsciiLetterLower(text[0]) || char.IsAsciiDigit(text[0]));
        foreach (var c in text)
        {
            valid &= char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.';
        }
        valid &= text[^1] != '-' && text[^1] != '.';
        if (!valid)
        {
            Error(v.Node, $"{key} '{text}' must be a lower-case DNS name (a-z, 0-9, '-', '.'; at most {maxLength})");
            return null;
        }
        return text;
    }

    private static bool IsHeaderName(string name)
    {
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }
        return name.Length > 0;
    }

    private void Error(YamlNode node, string reason) => Error(node.Start.Line, node.Start.Column, reason);

    private void Error(long line, long column, string reason) => _errors.Add(new PolicyError(_file, line, column, reason));
}

/// <summary>A parsed file: its policies, or (if any mistake was found) none and every error.</summary>
public sealed record PolicyFileResult(string File, IReadOnlyList<AccessPolicy> Policies, IReadOnlyList<PolicyError> Errors)
{
    public bool IsValid => Errors.Count == 0;
}
