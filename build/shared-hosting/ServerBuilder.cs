using Microsoft.AspNetCore.Builder;

namespace MeshGuard.Hosting;

/// <summary>
/// The web host builder every MeshGuard server starts from: the slim builder, without watching its configuration
/// files for changes. Watching would set a recursive file watcher on the content root (the working directory: "/"
/// in the images), which walks and watches every directory under it at start: measured on the NativeAOT sidecar
/// run from the repository, 95 ms of its start spent walking the tree, and an inotify instance and watches per
/// process, which a node's per-user limit bounds. MeshGuard takes its settings from its command line and reads no
/// configuration that could change under it.
/// </summary>
internal static class ServerBuilder
{
    public static WebApplicationBuilder Create() => WebApplication.CreateSlimBuilder(new WebApplicationOptions
    {
        // Read by the host defaults before they add the JSON files (hostBuilder:reloadConfigOnChange).
        Args = ["--hostBuilder:reloadConfigOnChange=false"],
    });
}
