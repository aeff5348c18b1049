using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace MeshGuard.ControlPlane.Tests.Manifests;

/// <summary>
/// Checks a value against a CustomResourceDefinition's openAPIV3Schema as the API server does for the keywords
/// the AccessPolicy schema uses: type, properties (an unknown field is an error, as kubectl's strict field
/// validation makes it), required, enum, pattern, min/maxLength, minItems, minimum/maximum,
/// min/maxProperties and items. An object schema without properties takes any fields (metadata).
/// </summary>
internal static class StructuralSchema
{
    public static List<string> Validate(JsonNode? value, JsonNode schema)
    {
        var errors = new List<string>();
        Check(value, schema, "", errors);
        return errors;
    }

    // Values read from YAML are int or long; comparing through the text avoids converting between them.
    private static long Number(JsonNode node) => long.Parse(node.ToJsonString(), CultureInfo.InvariantCulture);

    private static void Check(JsonNode? value, JsonNode schema, string path, List<string> errors)
    {
        var where = path.Length == 0 ? "<root>" : path;
        if (value is null)
        {
            errors.Add($"{where}: null");
            return;
        }
        var type = (string?)schema["type"];
        switch (type)
        {
            case "object" when value is not JsonObject:
            case "array" when value is not JsonArray:
            case "string" when value.GetValueKind() != JsonValueKind.String:
            case "integer" when value.GetValueKind() != JsonValueKind.Number || !long.TryParse(value.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _):
            case "boolean" when value.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False):
                errors.Add($"{where}: must be {type}");
                return;
            default:
                break;
        }
        if (schema["enum"] is JsonArray choices && !choices.Any(c => JsonNode.DeepEquals(c, value)))
        {
            errors.Add($"{where}: {value.ToJsonString()} is not one of {choices.ToJsonString()}");
        }
        if (value is JsonObject map)
        {
            if (schema["properties"] is JsonObject properties)
            {
                foreach (var (key, child) in map)
                {
                    if (properties[key] is { } childSchema)
                    {
                        Check(child, childSchema, path + "." + key, errors);
                    }
                    else
                    {
                        errors.Add($"{path}.{key}: unknown field");
                    }
                }
            }
            foreach (var required in schema["required"]?.AsArray() ?? [])
            {
                if (!map.ContainsKey((string)required!))
                {
                    errors.Add($"{where}: missing required field '{required}'");
                }
            }
            if (schema["minProperties"] is { } min && map.Count < Number(min))
            {
                errors.Add($"{where}: at least {min} fields");
            }
            if (schema["maxProperties"] is { } max && map.Count > Number(max))
            {
                errors.Add($"{where}: at most {max} fields");
            }
        }
        if (value is JsonArray list)
        {
            if (schema["minItems"] is { } minItems && list.Count < Number(minItems))
            {
                errors.Add($"{where}: at least {minItems} items");
            }
            if (schema["items"] is { } itemSchema)
            {
                for (var i = 0; i < list.Count; i++)
                {
                    Check(list[i], itemSchema, $"{path}[{i}]", errors);
                }
            }
        }
        if (type == "string")
        {
            var text = (string)value!;
            if (schema["pattern"] is { } pattern && !Regex.IsMatch(text, (string)pattern!))
            {
                errors.Add($"{where}: '{text}' does not match {pattern}");
            }
            if (schema["minLength"] is { } minLength && text.Length < Number(minLength))
            {
                errors.Add($"{where}: shorter than {minLength}");
            }
            if (schema["maxLength"] is { } maxLength && text.Length > Number(maxLength))
            {
                errors.Add($"{where}: longer than {maxLength}");
            }
        }
        if (type == "integer")
        {
            var number = Number(value);
            if (schema["minimum"] is { } minimum && number < Number(minimum))
            {
                errors.Add($"{where}: below {minimum}");
            }
            if (schema["maximum"] is { } maximum && number > Number(maximum))
            {
                errors.Add($"{where}: above {maximum}");
            }
        }
    }
}
