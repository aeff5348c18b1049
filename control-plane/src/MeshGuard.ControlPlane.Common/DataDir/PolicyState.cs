using System.Text.Json;
using System.Text.Json.Serialization;
using MeshGuard.Contracts;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;

namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// The control plane's policy state in <c>DATA/state/policies.json</c>: the version in force, the mesh
/// default, every file's state and the policies in force (last good versions included). Written by
/// meshguard-cp on every change; read by <c>meshctl policy status</c> and <c>meshctl authz check --data</c>.
/// </summary>
public static class PolicyState
{
    public static void Write(DataDirectory data, long version, MeshDefault meshDefault, IReadOnlyList<AccessPolicy> inForce, IReadOnlyList<PolicyStateFile> files, DateTimeOffset now)
    {
        var document = Build(version, meshDefault.ToText(), inForce, files, now);
        Directory.CreateDirectory(data.StateDirectory);
        SecureFile.WriteAtomically(data.PolicyStateFile, JsonSerializer.Serialize(document, PolicyStateJsonContext.Default.PolicyStateDocument), secret: false);
    }

    /// <summary>The state as a document (what the file holds; meshctl builds the same from an etcd store).</summary>
    public static PolicyStateDocument Build(long version, string meshDefault, IReadOnlyList<AccessPolicy> inForce, IReadOnlyList<PolicyStateFile> files, DateTimeOffset now)
    {
        using var policies = JsonDocument.Parse(PolicyCodec.Serialize(inForce));
        return new PolicyStateDocument(version, meshDefault, now, files, policies.RootElement.Clone());
    }

    /// <summary>Reads the state; a missing file means the control plane has not run on this directory.</summary>
    public static (PolicyStateDocument Document, IReadOnlyList<AccessPolicy> InForce) Read(DataDirectory data)
    {
        if (!File.Exists(data.PolicyStateFile))
        {
            throw new FileNotFoundException($"{data.PolicyStateFile} does not exist: has meshguard-cp run with --data {data.Root}?");
        }
        var document = JsonSerializer.Deserialize(File.ReadAllText(data.PolicyStateFile), PolicyStateJsonContext.Default.PolicyStateDocument)
            ?? throw new FormatException($"{data.PolicyStateFile} is empty");
        return (document, PolicyCodec.Deserialize(System.Text.Encoding.UTF8.GetBytes(document.Policies.GetRawText())));
    }
}

public sealed record PolicyStateFile(
    [property: JsonPropertyName("file")] string File,
    [property: JsonPropertyName("accepted")] bool Accepted,
    [property: JsonPropertyName("policies_in_force")] IReadOnlyList<string> PoliciesInForce,
    [property: JsonPropertyName("errors")] IReadOnlyList<string> Errors);

public sealed record PolicyStateDocument(
    [property: JsonPropertyName("version")] long Version,
    [property: JsonPropertyName("mesh_default")] string MeshDefault,
    [property: JsonPropertyName("written_at")] DateTimeOffset WrittenAt,
    [property: JsonPropertyName("files")] IReadOnlyList<PolicyStateFile> Files,
    [property: JsonPropertyName("policies")] JsonElement Policies);

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(PolicyStateDocument))]
internal sealed partial class PolicyStateJsonContext : JsonSerializerContext;
