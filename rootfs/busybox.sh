#!/bin/sh
# Build the offline `busybox` base image's root filesystem from Debian's busybox-static.
# Usage: rootfs/busybox.sh OUT.tar     (then: minidock import OUT.tar busybox:latest)
# Every applet is a symlink to /bin/busybox; /etc has passwd, group, and the usual users.
set -eu
out=${1:?usage: $0 OUT.tar}
bb=$(command -v busybox || true)
if [ -z "$bb" ] || ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
    [ -x /bin/busybox ] && bb=/bin/busybox
fi
if [ -z "$bb" ] || [ ! -x "$bb" ]; then
    echo "busybox.sh: busybox-static is not installed: apt-get install busybox-static" >&2
    exit 1
fi
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/bin" "$dir/sbin" "$dir/usr/bin" "$dir/usr/sbin" "$dir/etc" "$dir/root" \
         "$dir/tmp" "$dir/var/tmp" "$dir/home" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/run" \
         "$dir/var/www"
cp "$bb" "$dir/bin/busybox"
chmod 755 "$dir/bin/busybox"
chmod 1777 "$dir/tmp" "$dir/var/tmp"
chmod 700 "$dir/root"
# one symlink per applet, where `busybox --list-full` says it lives
"$bb" --list-full | while read -r path; do
    [ "$path" = bin/busybox ] && continue
    mkdir -p "$dir/$(dirname "$path")"
    ln -sf /bin/busybox "$dir/$path"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat > "$dir/etc/group" <<'G'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
G
echo "127.0.0.1 localhost" > "$dir/etc/hosts"
: > "$dir/etc/resolv.conf"
echo minidock > "$dir/etc/hostname"
tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$out" .
echo "$out"
