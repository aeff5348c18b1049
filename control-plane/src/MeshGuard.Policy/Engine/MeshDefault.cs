namespace MeshGuard.Policy.Engine;

/// <summary>What applies to a workload no enforce-mode policy selects.</summary>
public enum MeshDefault
{
    /// <summary>Nothing gets in (the default).</summary>
    Deny,

    /// <summary>Any caller with a valid SVID of the mesh gets in.</summary>
    AllowAuthenticated,

    /// <summary>Everything gets in: for migration only.</summary>
    Allow,
}

public static class MeshDefaults
{
    public static bool TryParse(string? text, out MeshDefault value)
    {
        switch (text)
        {
            case "deny":
                value = MeshDefault.Deny;
                return true;
            case "allow-authenticated":
                value = MeshDefault.AllowAuthenticated;
                return true;
            case "allow":
                value = MeshDefault.Allow;
                return true;
            default:
                value = MeshDefault.Deny;
                return false;
        }
    }

    public static string ToText(this MeshDefault value) => value switch
    {
        MeshDefault.AllowAuthenticated => "allow-authenticated",
        MeshDefault.Allow => "allow",
        _ => "deny",
    };
}
