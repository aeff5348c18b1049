using MeshGuard.Contracts;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// The identities whose SVIDs the mesh no longer honours: <c>revocations.txt</c> in the data directory, one
/// SPIFFE ID a line, <c>#</c> starts a comment. meshctl writes it, the control plane watches it and puts the
/// list into every snapshot, and sidecars refuse those callers (and close their open connections). A file
/// with a bad line is refused as a whole, with file, line and reason, and the last good list stays in force.
/// </summary>
public sealed class RevocationList
{
    private RevocationList(IReadOnlyList<SpiffeId> ids) => Ids = ids;

    public static RevocationList Empty { get; } = new([]);

    /// <summary>Revoked identities, sorted and without duplicates.</summary>
    public IReadOnlyList<SpiffeId> Ids { get; }

    public bool Contains(SpiffeId id)
    {
        foreach (var revoked in Ids)
        {
            if (revoked == id)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Reads the list; a missing file is an empty list.</summary>
    public static RevocationList Load(string path, out string? error)
    {
        error = null;
        return File.Exists(path) ? Parse(File.ReadAllText(path), path, out error) : Empty;
    }

    /// <summary>Parses the list's text (from the file, or a cluster's ConfigMap named by <paramref name="source"/>); a bad line refuses it all.</summary>
    public static RevocationList Parse(string text, string source, out string? error)
    {
        error = null;
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (lineNumber, line) in ListFileLines.Read(text))
        {
            if (!SpiffeId.TryParse(line, out var id, out var reason))
            {
                error = $"{source}:{lineNumber}: '{line}' is not a SPIFFE ID: {reason}";
                return Empty;
            }
            ids.Add(id.ToString());
        }
        var parsed = new List<SpiffeId>(ids.Count);
        foreach (var id in ids)
        {
            parsed.Add(SpiffeId.Parse(id));
        }
        return new RevocationList(parsed);
    }

    /// <summary>Adds (or with <paramref name="revoke"/> false, removes) one identity and writes the file atomically.</summary>
    public static RevocationList Update(string path, SpiffeId id, bool revoke)
    {
        var current = Load(path, out var error);
        if (error is not null)
        {
            throw new InvalidDataException(error);
        }
        SecureFile.WriteAtomically(path, current.With(id, revoke), secret: false);
        return Load(path, out _);
    }

    /// <summary>The text of this list with <paramref name="id"/> added (or with <paramref name="revoke"/> false, removed).</summary>
    public string With(SpiffeId id, bool revoke)
    {
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var existing in Ids)
        {
            ids.Add(existing.ToString());
        }
        if (revoke)
        {
            ids.Add(id.ToString());
        }
        else
        {
            ids.Remove(id.ToString());
        }
        var text = new System.Text.StringBuilder("# Identities whose SVIDs the mesh refuses (meshctl identity revoke / unrevoke).\n");
        foreach (var revoked in ids)
        {
            text.Append(revoked).Append('\n');
        }
        return text.ToString();
    }
}
