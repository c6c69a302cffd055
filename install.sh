#!/bin/sh
# Install minidock on a fresh Debian 12 / Ubuntu 24.04 (or similar) machine, then run a container.
#
#   sudo ./install.sh            apt packages, a venv in .venv, `minidock` on root's PATH,
#                                the busybox image, and a first container
#   sudo ./install.sh --test     also what the test suite needs (registry, podman, runc, qemu ...),
#                                no demo run (scripts/test calls this)
#   sudo ./install.sh --bench    --test, plus the `bench` extra (matplotlib, for scripts/plot-curves)
#
# Idempotent: run it again any time; it only installs what is missing.
set -eu
cd "$(dirname "$0")"
REPO=$(pwd)
if [ "$(id -u)" != 0 ]; then
    exec sudo "$0" "$@"
fi
MODE=user
[ "${1:-}" = "--test" ] && MODE=test
[ "${1:-}" = "--bench" ] && MODE=bench   # the benchmarks need the peers the tests use, and a plotter

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# ---- apt packages: only the ones missing, so a second run touches nothing -----------------------
RUN_PKGS="python3 python3-venv python3-pip busybox-static tini iproute2 nftables iptables
          libseccomp2 zstd xz-utils ca-certificates"
TEST_PKGS="docker-registry skopeo umoci podman runc crun containerd docker.io qemu-system-x86
           debootstrap hyperfine tmux strace cpio apache2-utils gcc libc6-dev curl
           containernetworking-plugins make"
want=$RUN_PKGS
[ "$MODE" != user ] && want="$RUN_PKGS $TEST_PKGS"
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # a package the release lacks must not block the others: install what exists
    avail=""
    for p in $missing; do
        apt-cache show "$p" >/dev/null 2>&1 && avail="$avail $p" || echo "   (no package $p here: skipped)"
    done
    # shellcheck disable=SC2086
    [ -n "$avail" ] && apt-get install -y -qq --no-install-recommends $avail >/dev/null
fi

# ---- the venv (Debian's python starts twice as fast as a pyenv build: it matters per `run`) ------
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ ! -x .venv/bin/python ]; then
    say "creating the venv in $REPO/.venv"
    "$PY" -m venv .venv
fi
extras=""
[ "$MODE" = test ] && extras="[test]"
[ "$MODE" = bench ] && extras="[test,bench]"
stamp=".venv/.installed$(echo "$extras" | tr -d '[]' | tr , -)"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing minidock$extras into the venv"
    # editable_mode=compat: a static .pth path entry; the default import-hook finder costs ~9 ms
    # on every start
    .venv/bin/pip install -q --disable-pip-version-check -e ".$extras" --config-settings editable_mode=compat
    touch "$stamp"
fi
# byte-compile once: every `minidock run` would otherwise recompile when PYTHONDONTWRITEBYTECODE is set
.venv/bin/python -m compileall -q minidock >/dev/null
# the console scripts, written plainly: pip's template imports `re` (to strip a Windows ".exe"),
# ~4 ms of every `minidock ps` (re pulls enum). Same entry points as pyproject.toml's [project.scripts]
# (minidock-runtime: below).
for entry in "minidock minidock.cli.main"; do
    cmd=${entry%% *} mod=${entry#* }
    printf '#!%s\nimport sys\nfrom %s import main\nsys.exit(main())\n' "$REPO/.venv/bin/python3" "$mod" \
        > ".venv/bin/$cmd.tmp"
    chmod 755 ".venv/bin/$cmd.tmp"
    mv ".venv/bin/$cmd.tmp" ".venv/bin/$cmd"
done
# minidock-runtime: a launcher started `python3 -I -S` in place of pip's console script (~6 ms less
# per call; engines make 3+ calls per container): see scripts/runtime-launcher
scripts/runtime-launcher .venv/bin/minidock-runtime

for cmd in minidock minidock-runtime; do
    ln -sf "$REPO/.venv/bin/$cmd" "/usr/local/bin/$cmd"
done

# podman refuses to start containers when its default ulimits exceed the host's hard limits
if [ "$MODE" != user ] && command -v podman >/dev/null && [ ! -f /etc/containers/containers.conf ]; then
    hard=$(ulimit -Hn)
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s"]\n' "$hard" "$hard" > /etc/containers/containers.conf
fi

# ---- containers with a restart policy come back after a reboot: a one-shot unit runs `minidock
# system boot` (where systemd is PID 1)
if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    unit=/etc/systemd/system/minidock-boot.service
    if ! cmp -s contrib/systemd/minidock-boot.service "$unit"; then
        say "installing $unit (runs 'minidock system boot' at boot)"
        cp contrib/systemd/minidock-boot.service "$unit"
        systemctl daemon-reload
    fi
    systemctl is-enabled -q minidock-boot.service 2>/dev/null || systemctl enable -q minidock-boot.service
fi

[ "$MODE" != user ] && exit 0

# ---- the default image and a first container -------------------------------------------------------
if ! minidock image inspect busybox >/dev/null 2>&1; then
    say "building the busybox image from busybox-static (rootfs/busybox.sh)"
    tmp=$(mktemp -d)
    sh rootfs/busybox.sh "$tmp/busybox.tar" >/dev/null
    minidock import "$tmp/busybox.tar" busybox:latest --change 'CMD ["sh"]' >/dev/null
    rm -rf "$tmp"
fi
say "running a container: minidock run --rm busybox ..."
minidock run --rm --hostname hello busybox sh -c \
    'echo "Hello from a minidock container: I am PID $$ on host $(hostname), and I see $(ps -o pid= | wc -l) processes."'
say "done. Try: sudo minidock run -it busybox sh     (and: sudo minidock run --explain --rm busybox true)"
