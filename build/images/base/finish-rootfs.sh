#!/usr/bin/env bash
# Finishes a base root file system that mmdebstrap extracted: `finish-rootfs.sh ROOT KIND DOTNET_ROOT` (the SDK's
# directory, whose shared frameworks the dotnet kind carries).
# The extract variant unpacks packages without running their maintainer scripts, so what those scripts would
# make (the CA bundle, iptables' alternatives) is made here, and what no MeshGuard program reads (docs, apt and
# dpkg state, charset converters, the packages' own tools) is removed: what is left is what the programs load.
set -euo pipefail
root=$1 kind=$2 dotnet_root=$3
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,bash-completion,debconf,pixmaps} "$root"/var/cache/* \
  "$root"/var/lib/apt "$root"/var/lib/dpkg "$root"/var/log/* "$root"/etc/apt "$root"/etc/dpkg "$root"/etc/debconf.conf \
  "$root"/usr/lib/x86_64-linux-gnu/gconv
if [ "$kind" != iptables ]; then
  # No shell and no tools, as a distroless image: only the dynamic loader and libraries stay.
  rm -rf "$root"/usr/bin/* "$root"/usr/sbin/* "$root"/bin/* "$root"/sbin/* "$root"/usr/lib/ssl/misc
fi
# The CA bundle update-ca-certificates would write: every certificate ca-certificates ships, in name order.
mkdir -p "$root/etc/ssl/certs"
find "$root/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs cat > "$root/etc/ssl/certs/ca-certificates.crt"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
meshguard:x:1337:1337:MeshGuard sidecar:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
meshguard:x:1337:
nonroot:x:65532:
GROUP
mkdir -p "$root/tmp" "$root/home/nonroot" "$root/root"
chmod 1777 "$root/tmp"; chown 65532:65532 "$root/home/nonroot"; chmod 0700 "$root/root"
case "$kind" in
  dotnet)
    # The .NET runtime the framework-dependent programs run on, taken from the SDK that built them.
    mkdir -p "$root/usr/share/dotnet"
    cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$dotnet_root/LICENSE.txt" "$dotnet_root/ThirdPartyNotices.txt" "$root/usr/share/dotnet/"
    mkdir -p "$root/usr/share/dotnet/shared"
    cp -a "$dotnet_root/shared/Microsoft.NETCore.App" "$dotnet_root/shared/Microsoft.AspNetCore.App" "$root/usr/share/dotnet/shared/"
    ;;
  iptables)
    # iptables' postinst would choose the nftables backend through alternatives; the links are made here.
    for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
      ln -sf xtables-nft-multi "$root/usr/sbin/$tool"
    done
    ;;
esac
