#!/bin/sh
# Build a Debian minbase root filesystem with debootstrap (needs a Debian mirror).
# Usage: rootfs/debian.sh OUT.tar [SUITE]    (then: minidock import OUT.tar debian:SUITE --change 'CMD ["bash"]')
# The debootstrap download is cached in /var/cache/minidock-rootfs.
set -eu
out=${1:?usage: $0 OUT.tar [SUITE]}
suite=${2:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "debian.sh: debootstrap is not installed: apt-get install debootstrap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debian.sh: debootstrap needs root: run with sudo" >&2; exit 1; }
cache=/var/cache/minidock-rootfs/debootstrap-$suite
mkdir -p "$cache"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if ! debootstrap --variant=minbase --cache-dir="$cache" "$suite" "$dir" "$mirror" >"$dir.log" 2>&1; then
    echo "debian.sh: debootstrap $suite from $mirror failed (last lines of the log below)." >&2
    echo "Offline? Use rootfs/busybox.sh, which needs no network." >&2
    tail -5 "$dir.log" >&2
    rm -f "$dir.log"
    exit 1
fi
rm -f "$dir.log"
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
: > "$dir/etc/hostname"
tar --numeric-owner -C "$dir" -cf "$out" .
echo "$out"
