#!/usr/bin/env bash
# Builds MeshGuard's images here, offline: base root file systems from Debian packages (mmdebstrap), the
# programs already built in out/ copied on top (buildah, from the Containerfiles beside this script).
#   images.sh [--no-sbom]
# Writes out/images/NAME.oci.tar (gzip layers), out/images/sbom/NAME.cdx.json, out/images/digests.txt and
# out/images/sizes.txt; the images land in the local container storage, where podman runs them.
# Every image is tagged twice: VERSION (Directory.Build.props; what manifests/ and the injector name) and
# VERSION-DESCRIBE (`git describe`: the commit it was built from).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT="$ROOT/out/images"
export CONTAINERS_CONF="$HERE/containers.conf"
sbom=1; [ "${1:-}" = --no-sbom ] && sbom=0

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$ROOT/Directory.Build.props")
[ -n "$version" ] || { echo "images: no <Version> in Directory.Build.props" >&2; exit 1; }
describe=$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo unknown)
# Layers, files and image configs carry the commit's time, not the build's: the same commit builds the same bytes.
epoch=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
export SOURCE_DATE_EPOCH=$epoch
suite=bookworm
# The SDK that built the programs: its shared frameworks go into the dotnet base, and into those images' SBOMs.
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
dotnet_frameworks=()
for dir in "$dotnet_root"/shared/Microsoft.NETCore.App/* "$dotnet_root"/shared/Microsoft.AspNetCore.App/*; do
  dotnet_frameworks+=("$(basename "$(dirname "$dir")")=$(basename "$dir")")
done
# The host's Debian sources (its mirror, or a snapshot it is pinned to), else mmdebstrap's default mirror.
mirrors=()
for sources in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  if [ -s "$sources" ] && grep -qE '^[^#]*debian' "$sources"; then mirrors+=("$sources"); fi
done
# mmdebstrap's apt reads its own configuration: the host's proxy settings, if any, are handed over (a proxy in
# the environment, http_proxy, reaches it by itself).
aptopts=()
for conf in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  if [ -f "$conf" ] && grep -qiE '^[^/#]*Acquire::[a-z]+::Proxy' "$conf"; then aptopts+=("--aptopt=$conf"); fi
done

for program in "$ROOT/out/aot/meshguard-proxy" "$ROOT/out/bin/meshguard-cp" "$ROOT/out/bin/meshctl" "$ROOT/out/bin/meshguard-sample"; do
  [ -x "$program" ] || { echo "images: $program is missing (./meshguard.sh build)" >&2; exit 1; }
done
rm -rf "$OUT"; mkdir -p "$OUT/rootfs" "$OUT/context" "$OUT/sbom"

# base NAME PACKAGES: a root file system from Debian packages, finished as finish-rootfs.sh does for NAME, imported
# as localhost/meshguard/base-NAME.
base() {
  local name=$1 packages=$2 dir="$OUT/rootfs/$1" ctr
  # The extract hook lists what went in, for the SBOMs, from the archives apt fetched (the extract variant
  # leaves no dpkg status to ask later).
  mmdebstrap --quiet --variant=extract --include="$packages" --skip=output/dev "${aptopts[@]}" \
    --extract-hook="for deb in \"\$1\"/var/cache/apt/archives/*.deb; do dpkg-deb --show --showformat='\${Package} \${Version} \${Architecture}\\n' \"\$deb\"; done | LC_ALL=C sort > '$OUT/rootfs/$name.packages'" \
    "$suite" "$dir" "${mirrors[@]}"
  [ -s "$OUT/rootfs/$name.packages" ] || { echo "images: no package list for base-$name" >&2; exit 1; }
  "$HERE/base/finish-rootfs.sh" "$dir" "$name" "$dotnet_root"
  # One layer, its bytes fixed by the commit: names sorted, times and owners numeric and set.
  tar --sort=name --mtime="@$epoch" --clamp-mtime --numeric-owner --xattrs -C "$dir" -cf "$dir.tar" .
  rm -rf "$dir"
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$dir.tar" / >/dev/null
  buildah config --created-by "mmdebstrap --variant=extract $suite: $packages" "$ctr"
  buildah commit --quiet --rm --timestamp "$epoch" "$ctr" "localhost/meshguard/base-$name:$version-$describe" >/dev/null
}

# image NAME BASE PROJECT FILE: the Containerfile build/images/NAME/Containerfile over base-BASE, with FILE copied in.
image() {
  local name=$1 basename=$2 project=$3 file=$4 ref="meshguard/$1:$version" context="$OUT/context/$1"
  mkdir -p "$context"; cp "$file" "$context/"
  buildah bud --quiet --timestamp "$epoch" --build-arg "BASE=localhost/meshguard/base-$basename:$version-$describe" \
    --label "org.opencontainers.image.title=meshguard/$name" --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$describe" \
    -f "$HERE/$name/Containerfile" -t "$ref" -t "meshguard/$name:$version-$describe" "$context" >/dev/null
  buildah push --quiet --compression-format gzip "$ref" "oci-archive:$OUT/$name.oci.tar:$ref" >/dev/null
  # The manifest's digest (what a registry would name it by) and the sizes, read from the archive itself.
  python3 - "$OUT/$name.oci.tar" "$ref" "$(podman image inspect --format '{{.Size}}' "$ref")" >> "$OUT/sizes.txt" 2>>"$OUT/digests.txt" <<'PY'
import json, sys, tarfile
path, ref, uncompressed = sys.argv[1], sys.argv[2], int(sys.argv[3])
with tarfile.open(path) as archive:
    index = json.load(archive.extractfile("index.json"))
    digest = index["manifests"][0]["digest"]
    manifest = json.load(archive.extractfile("blobs/sha256/" + digest.split(":", 1)[1]))
compressed = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
print(f"{ref:<40} {compressed / 1e6:8.1f} MB compressed {uncompressed / 1e6:8.1f} MB unpacked")
print(f"{ref} {digest}", file=sys.stderr)
PY
  if [ "$sbom" = 1 ]; then
    local frameworks=()
    [ "$basename" = dotnet ] && frameworks=("${dotnet_frameworks[@]}")
    "$ROOT/out/tools/dotnet-CycloneDX" "$ROOT/$project" -rt linux-x64 -ed -dpr -ns -F Json -o "$OUT/sbom" -fn "$name.program.json" \
      -sn "$(basename "$file")" -sv "$version" >/dev/null
    python3 "$HERE/sbom.py" "$OUT/sbom/$name.program.json" "$OUT/rootfs/$basename.packages" "meshguard/$name" "$version" \
      "$OUT/sbom/$name.cdx.json" "${frameworks[@]}"
    rm "$OUT/sbom/$name.program.json"
  fi
}

if [ "$sbom" = 1 ] && [ ! -x "$ROOT/out/tools/dotnet-CycloneDX" ]; then
  dotnet tool install CycloneDX --version 6.3.1 --tool-path "$ROOT/out/tools" >/dev/null
fi

# static: what the NativeAOT sidecar loads (libc, libssl; CA certificates). dotnet: the same with libstdc++ and
# the .NET runtime, for the framework-dependent programs. iptables: the init container's tools.
base static "libc6,libssl3,ca-certificates"
base dotnet "libc6,libstdc++6,libssl3,ca-certificates"
base iptables "libc6,libssl3,ca-certificates,iptables,netbase"

image proxy static proxy/src/MeshGuard.Proxy/MeshGuard.Proxy.csproj "$ROOT/out/aot/meshguard-proxy"
image proxy-init iptables proxy/src/MeshGuard.Proxy/MeshGuard.Proxy.csproj "$ROOT/out/aot/meshguard-proxy"
image control-plane dotnet control-plane/src/MeshGuard.ControlPlane/MeshGuard.ControlPlane.csproj "$ROOT/out/bin/meshguard-cp"
image meshctl dotnet control-plane/src/MeshGuard.Ctl/MeshGuard.Ctl.csproj "$ROOT/out/bin/meshctl"
image sample dotnet samples/MeshGuard.SampleService/MeshGuard.SampleService.csproj "$ROOT/out/bin/meshguard-sample"

rm -rf "$OUT/context"
echo "images ($version, $describe):"
cat "$OUT/sizes.txt"
echo "archives in out/images/, digests in out/images/digests.txt$([ "$sbom" = 1 ] && echo ", SBOMs in out/images/sbom/")"
