namespace MeshGuard.Policy.Parsing;

/// <summary>One mistake in a policy file, where it is: <c>file:line:column: reason</c>.</summary>
public sealed record PolicyError(string File, long Line, long Column, string Reason)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Reason}";
}
