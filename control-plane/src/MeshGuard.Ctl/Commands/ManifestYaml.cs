using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// Kubernetes manifests between YAML and JSON nodes, so that the injector's JSON Patch applies to a file as it
/// does to an API object. Plain scalars take the types YAML 1.2's core schema gives them (integers, floats,
/// booleans, null); quoted ones stay strings. Strings that would read back as something else are quoted.
/// </summary>
internal static class ManifestYaml
{
    /// <summary>Every document of the stream, in order (empty documents are skipped).</summary>
    public static List<JsonNode> Read(TextReader reader)
    {
        var stream = new YamlStream();
        stream.Load(reader);
        var documents = new List<JsonNode>();
        foreach (var document in stream.Documents)
        {
            if (ToJson(document.RootNode) is { } node)
            {
                documents.Add(node);
            }
        }
        return documents;
    }

    public static void Write(TextWriter writer, IReadOnlyList<JsonNode> documents)
    {
        var stream = new YamlStream();
        foreach (var document in documents)
        {
            stream.Documents.Add(new YamlDocument(ToYaml(document)));
        }
        stream.Save(writer, assignAnchors: false);
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode mapping => Mapping(mapping),
        YamlSequenceNode sequence => Sequence(sequence),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new FormatException($"line {node.Start.Line}: aliases are not supported in manifests"),
    };

    private static JsonObject Mapping(YamlMappingNode mapping)
    {
        var result = new JsonObject();
        foreach (var (key, value) in mapping.Children)
        {
            var name = (key as YamlScalarNode)?.Value ?? throw new FormatException($"line {key.Start.Line}: a mapping key must be a scalar");
            result[name] = ToJson(value);
        }
        return result;
    }

    private static JsonArray Sequence(YamlSequenceNode sequence)
    {
        var result = new JsonArray();
        foreach (var item in sequence.Children)
        {
            result.Add(ToJson(item));
        }
        return result;
    }

    private static JsonValue? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style is not ScalarStyle.Plain)
        {
            return JsonValue.Create(text);
        }
        if (text is "" or "~" or "null" or "Null" or "NULL")
        {
            return null;
        }
        if (text is "true" or "True" or "TRUE")
        {
            return JsonValue.Create(true);
        }
        if (text is "false" or "False" or "FALSE")
        {
            return JsonValue.Create(false);
        }
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return integer is >= int.MinValue and <= int.MaxValue ? JsonValue.Create((int)integer) : JsonValue.Create(integer);
        }
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && char.IsAsciiDigit(text[^1]))
        {
            return JsonValue.Create(number);
        }
        return JsonValue.Create(text);
    }

    private static YamlNode ToYaml(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                var mapping = new YamlMappingNode();
                foreach (var (key, child) in obj)
                {
                    mapping.Add(new YamlScalarNode(key), ToYaml(child));
                }
                return mapping;
            case JsonArray array:
                var sequence = new YamlSequenceNode();
                foreach (var item in array)
                {
                    sequence.Add(ToYaml(item));
                }
                return sequence;
            case null:
                return new YamlScalarNode("null") { Style = ScalarStyle.Plain };
            default:
                var value = node.AsValue();
                return value.GetValueKind() switch
                {
                    System.Text.Json.JsonValueKind.String => StringScalar(value.GetValue<string>()),
                    System.Text.Json.JsonValueKind.True => new YamlScalarNode("true") { Style = ScalarStyle.Plain },
                    System.Text.Json.JsonValueKind.False => new YamlScalarNode("false") { Style = ScalarStyle.Plain },
                    _ => new YamlScalarNode(value.ToJsonString()) { Style = ScalarStyle.Plain },
                };
        }
    }

    // A string that would read back as a number, boolean or null, or that is empty, is quoted.
    private static YamlScalarNode StringScalar(string text)
    {
        var plain = Scalar(new YamlScalarNode(text) { Style = ScalarStyle.Plain });
        var readsBack = plain is not null && plain.GetValueKind() == System.Text.Json.JsonValueKind.String && text.Length > 0;
        return new YamlScalarNode(text) { Style = readsBack ? ScalarStyle.Any : ScalarStyle.DoubleQuoted };
    }
}
