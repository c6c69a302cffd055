#!/bin/sh
# Alpine's minirootfs as a tarball (needs internet: dl-cdn.alpinelinux.org).
# Usage: rootfs/alpine.sh OUT.tar [VERSION]  (then: minidock import OUT.tar alpine:VERSION --change 'CMD ["sh"]')
# The download is verified against Alpine's published sha256. Offline, it fails with one clear
# message: use rootfs/busybox.sh or rootfs/debian.sh instead.
set -eu
out=${1:?usage: $0 OUT.tar [VERSION]}
ver=${2:-3.20.3}
arch=$(uname -m)
branch=v$(echo "$ver" | cut -d. -f1,2)
url=https://dl-cdn.alpinelinux.org/alpine/$branch/releases/$arch/alpine-minirootfs-$ver-$arch.tar.gz
fetch() {  # fetch URL FILE: curl or wget or python, 15 s at most
    if command -v curl >/dev/null; then curl -fsSL --max-time 15 -o "$2" "$1"
    elif command -v wget >/dev/null; then wget -q -T 15 -O "$2" "$1"
    else python3 -c 'import sys,urllib.request; open(sys.argv[2],"wb").write(urllib.request.urlopen(sys.argv[1],timeout=15).read())' "$1" "$2"
    fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! fetch "$url" "$tmp/rootfs.tar.gz" 2>"$tmp/err" || ! fetch "$url.sha256" "$tmp/sum" 2>>"$tmp/err"; then
    echo "alpine.sh: cannot download $url: $(tail -1 "$tmp/err" 2>/dev/null || echo 'no answer')." >&2
    echo "Alpine's minirootfs needs internet; use rootfs/busybox.sh or rootfs/debian.sh offline." >&2
    exit 1
fi
want=$(cut -d' ' -f1 "$tmp/sum")
got=$(sha256sum "$tmp/rootfs.tar.gz" | cut -d' ' -f1)
if [ "$want" != "$got" ]; then
    echo "alpine.sh: checksum mismatch for $url (expected $want, got $got): not used." >&2
    exit 1
fi
gzip -dc "$tmp/rootfs.tar.gz" > "$out"
echo "$out"
