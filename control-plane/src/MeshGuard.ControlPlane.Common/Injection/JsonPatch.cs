using System.Text.Json.Nodes;

namespace MeshGuard.ControlPlane.Common.Injection;

/// <summary>
/// Applies the "add" operations of a JSON Patch (RFC 6902), the only kind the injector writes, so that
/// <c>meshctl inject</c> changes a manifest exactly as the webhook's patch changes a pod.
/// </summary>
public static class JsonPatch
{
    public static void Apply(JsonNode document, JsonArray patch)
    {
        foreach (var operation in patch)
        {
            if (operation?["op"]?.GetValue<string>() != "add")
            {
                throw new FormatException($"unsupported JSON Patch operation: {operation?.ToJsonString()}");
            }
            var path = operation["path"]!.GetValue<string>();
            var value = operation["value"]?.DeepClone();
            var segments = path.Split('/');
            var parent = document;
            for (var i = 1; i < segments.Length - 1; i++)
            {
                parent = Child(parent, Unescape(segments[i])) ?? throw new FormatException($"{path}: '{segments[i]}' does not exist");
            }
            var last = Unescape(segments[^1]);
            switch (parent)
            {
                case JsonObject obj:
                    obj[last] = value;
                    break;
                case JsonArray array when last == "-":
                    array.Add(value);
                    break;
                case JsonArray array when int.TryParse(last, out var index) && index <= array.Count:
                    array.Insert(index, value);
                    break;
                default:
                    throw new FormatException($"{path}: cannot add there");
            }
        }
    }

    private static JsonNode? Child(JsonNode node, string key) => node switch
    {
        JsonObject obj => obj[key],
        JsonArray array when int.TryParse(key, out var index) && index < array.Count => array[index],
        _ => null,
    };

    private static string Unescape(string segment) => segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
}
