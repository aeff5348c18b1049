namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// The lines that mean something in the data directory's list files (revocations.txt, service-bindings.txt): each
/// with its number for error messages, <c>#</c> to the end of a line a comment, blank lines skipped.
/// </summary>
public static class ListFileLines
{
    public static IEnumerable<(int Number, string Line)> Read(string text)
    {
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var hash = raw.IndexOf('#', StringComparison.Ordinal);
            var line = (hash >= 0 ? raw[..hash] : raw).Trim();
            if (line.Length > 0)
            {
                yield return (number, line);
            }
        }
    }
}
