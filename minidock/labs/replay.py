"""`minidock replay CONTAINER`: a bash script that builds the same container by hand.

The script reads like the lecture: overlay mount, cgroup, namespaces (util-linux `unshare`),
the mounts of the OCI spec, hostname, its own veth and bridge (iproute2), pivot_root, and the
last steps no standard tool does in one process — rlimits, ids, capabilities, no_new_privs,
seccomp, exec — by ``replay-exec`` (a tiny static C helper shipped with minidock and compiled
by the script). Every line is a command that runs as printed; variables are defined at the top;
an EXIT trap removes everything the script made.

Input: the container's record and its OCI spec (``bundle/config.json``) — the same input the
runtime had. ``--check`` runs the script and compares what the kernel holds for the replayed
container with the real one (kernelview.py): namespaces, capabilities, no_new_privs, seccomp
mode, mounts, cgroup limits, network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path

from minidock.kernel.constants import CAPABILITIES

HELPER_SOURCE = Path(__file__).with_name("replay-exec.c")
NS_FLAGS = {"mount": "--mount", "uts": "--uts", "ipc": "--ipc", "pid": "--pid", "network": "--net",
            "cgroup": "--cgroup"}
CAP_BITS = {name: i for i, name in enumerate(CAPABILITIES)}
# Docker's standard device nodes (the runtime makes the same ones on a tmpfs /dev)
DEVICES = [("null", "c", 1, 3), ("zero", "c", 1, 5), ("full", "c", 1, 7), ("random", "c", 1, 8),
           ("urandom", "c", 1, 9), ("tty", "c", 5, 0)]
# mount options that are flags of mount(8), not data
FLAG_OPTS = {"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "strictatime", "relatime",
             "noatime", "nodiratime", "sync", "remount", "bind", "rbind", "private", "rprivate", "slave",
             "rslave", "shared", "rshared"}


def q(s) -> str:
    return shlex.quote(str(s))


def _mount_lines(m: dict) -> list[str]:
    dest = "$ROOTFS" + m["destination"]
    opts = m.get("options") or []
    typ = m.get("type") or "none"
    src = m.get("source") or typ
    if typ == "bind" or "bind" in opts or "rbind" in opts:
        mk = f'[ -d {q(src)} ] && mkdir -p "{dest}" || {{ mkdir -p "$(dirname "{dest}")"; touch "{dest}"; }}'
        lines = [mk, f'mount --{"rbind" if "rbind" in opts else "bind"} {q(src)} "{dest}"']
        if "ro" in opts:
            lines.append(f'mount -o remount,bind,ro "{dest}"')
        return lines
    if typ == "cgroup":
        return ["# /sys/fs/cgroup: the container's own cgroup (its cgroup namespace makes it the root)",
                *_cgroupfs_lines(dest, opts)]
    flags = [o for o in opts if o in FLAG_OPTS]
    data = [o for o in opts if o not in FLAG_OPTS]
    o = ",".join(flags + data)
    return [f'mkdir -p "{dest}"', f'mount -t {typ}{" -o " + q(o) if o else ""} {q(src)} "{dest}"']


def _cgroupfs_lines(dest: str, opts: list[str]) -> list[str]:
    """The container's /sys/fs/cgroup as the runtime mounts it (runtime/cgroups_mount.py)."""
    from minidock.runtime.cgroups_mount import host_cgroup_mounts

    flags = ",".join(o for o in opts if o in ("ro", "nosuid", "nodev", "noexec"))
    mounts = host_cgroup_mounts()
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t, _ in mounts):
        return [f'mkdir -p "{dest}"', f'mount -t cgroup2 -o {flags} cgroup2 "{dest}"']
    lines = [f'mkdir -p "{dest}"', f'mount -t tmpfs -o nosuid,nodev,noexec,mode=755 tmpfs "{dest}"']
    for mp, fstype, superopts in mounts:
        name = mp[len("/sys/fs/cgroup/"):] if mp.startswith("/sys/fs/cgroup/") else ""
        if not name or "/" in name or fstype == "cgroup2":
            continue  # (a hybrid host's controller-less unified mount: runc leaves it out too)
        data = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro"))
        lines += [f'mkdir -p "{dest}/{name}"', f'mount -t cgroup -o {flags},{data} cgroup "{dest}/{name}"']
    lines.append(f'mount -o remount,ro,nosuid,nodev,noexec "{dest}"')
    return lines


def _cgroup_lines(spec: dict) -> tuple[list[str], list[str]]:
    """(create lines, remove lines) for the replay's cgroup with the spec's limits."""
    from minidock.runtime.cgroups import cgroup_version, mounts

    res = (spec.get("linux") or {}).get("resources") or {}
    mem = (res.get("memory") or {}).get("limit")
    pids = (res.get("pids") or {}).get("limit")
    cpu = res.get("cpu") or {}
    if cgroup_version() == 2:
        base = mounts()["v2"]
        d = f"{base}/$CGROUP"
        out = ['# enable the controllers at every level above the leaf (v2: "no internal processes")',
               f'p={base}; for part in $(echo "$CGROUP" | tr / " "); do '
               f'echo "+memory +pids +cpu" > $p/cgroup.subtree_control 2>/dev/null || true; p=$p/$part; '
               f'mkdir -p $p; done']
        if mem:
            out.append(f"echo {mem} > {d}/memory.max")
        if pids:
            out.append(f"echo {pids} > {d}/pids.max")
        if cpu.get("quota"):
            out.append(f"echo '{cpu['quota']} {cpu.get('period', 100000)}' > {d}/cpu.max")
        out.append("# (the v2 device rules are an eBPF program: no shell tool loads one; see "
                   "minidock/runtime/cgroups/devicefilter.py)")
        return out, [f"rmdir {d} 2>/dev/null || true"]
    v1 = mounts()["v1"]
    ctrls = sorted({c for c in ("memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer", "blkio")
                    if c in v1})
    out = [f"for c in {' '.join(ctrls)}; do mkdir -p /sys/fs/cgroup/$c/$CGROUP; done"]
    if "cpuset" in v1:
        out += ["# a new v1 cpuset is empty: copy the parent's CPUs and memory nodes",
                "cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/$CGROUP/cpuset.cpus",
                "cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/$CGROUP/cpuset.mems"]
    if mem:
        out.append(f"echo {mem} > /sys/fs/cgroup/memory/$CGROUP/memory.limit_in_bytes")
    if pids:
        out.append(f"echo {pids} > /sys/fs/cgroup/pids/$CGROUP/pids.max")
    if cpu.get("quota"):
        out += [f"echo {cpu.get('period', 100000)} > /sys/fs/cgroup/cpu/$CGROUP/cpu.cfs_period_us",
                f"echo {cpu['quota']} > /sys/fs/cgroup/cpu/$CGROUP/cpu.cfs_quota_us"]
    if "devices" in v1:
        out.append("echo a > /sys/fs/cgroup/devices/$CGROUP/devices.deny")
        for r in res.get("devices") or []:
            if not r.get("allow"):
                continue
            major = "*" if r.get("major", -1) in (None, -1) else r["major"]
            minor = "*" if r.get("minor", -1) in (None, -1) else r["minor"]
            out.append(f"echo '{r.get('type', 'a')} {major}:{minor} {r.get('access', 'rwm')}' > "
                       f"/sys/fs/cgroup/devices/$CGROUP/devices.allow")
    rm = [f"for c in {' '.join(ctrls)}; do rmdir /sys/fs/cgroup/$c/$CGROUP 2>/dev/null || true; done"]
    return out, rm


def _seccomp_programs(profile: dict | None) -> list[bytes]:
    """The BPF programs the runtime would install for this spec's seccomp profile, in order."""
    if not profile:
        return []
    from minidock.kernel import seccomp_lib
    from minidock.runtime import seccomp

    lib = seccomp_lib.open_library()
    if lib is None:
        return []
    default, rules = seccomp.compile_rules(profile)
    return seccomp_lib.export_bpf(lib, default, profile.get("architectures") or [], rules, enosys_newer=True)


def _b64_lines(data: bytes) -> list[str]:
    import base64

    text = base64.b64encode(data).decode()
    return [text[i:i + 100] for i in range(0, len(text), 100)]


def script(rec: dict, spec: dict, *, workdir: str | None = None) -> str:
    cid = rec["Id"]
    short = cid[:8]
    proc = spec.get("process") or {}
    linux = spec.get("linux") or {}
    if linux.get("uidMappings"):  # (the script has no user namespace step, nor idmapped layers)
        from minidock.errors import MinidockError

        raise MinidockError(f"replay does not rebuild user namespaces: {rec['Name'].lstrip('/')} runs with "
                            "--uidmap/--gidmap", "Replay a container without ID maps; `run --explain "
                            "--uidmap ...` shows the user namespace's steps.")
    nss = [n["type"] for n in linux.get("namespaces", []) if not n.get("path")]
    data = (rec.get("GraphDriver") or {}).get("Data") or {}
    net_own = "network" in nss and (rec.get("HostConfig", {}).get("NetworkMode") or "none") != "none"
    third = int(hashlib.sha1(cid.encode()).hexdigest(), 16) % 200 + 20
    parent = rec.get("HostConfig", {}).get("CgroupParent") or "minidock"
    user = proc.get("user") or {}
    caps = sum(1 << CAP_BITS[c] for c in (proc.get("capabilities") or {}).get("bounding", []) if c in CAP_BITS)
    L = [
        "#!/bin/bash",
        f"# A container built by hand: the replay of {rec['Name'].lstrip('/')} ({cid[:12]}), made by",
        "# `minidock replay`. Run as root: bash THIS_FILE [COMMAND...] (default: the container's own).",
        "# Every step is one standard command; the EXIT trap removes everything this script made.",
        "set -euo pipefail",
        "",
        "# ---- what the container is made of (from its record and its OCI spec) -------------------------",
        f"R={q(workdir or f'/tmp/minidock-replay-{short}')}        # work dir: upper/work dirs, etc files, helper",
        f"LOWER={q(data.get('LowerDir', ''))}",
        "UPPER=$R/upper WORK=$R/work ROOTFS=$R/rootfs",
        f"CGROUP={q(f'{parent}/replay-{short}')}",
        f"HOSTNAME_={q(spec.get('hostname') or short)}",
        f"HELPER_SRC={q(str(HELPER_SOURCE))}",
        f"BRIDGE=mdr-{short[:6]} VETH_HOST=mdrh{short[:6]} VETH_CTR=mdrc{short[:6]}",
        f"SUBNET=10.215.{third}.0/24 GATEWAY=10.215.{third}.1 ADDRESS=10.215.{third}.2",
        "if [ $# -gt 0 ]; then CMD=(\"$@\"); else CMD=(" + " ".join(q(a) for a in proc.get("args", [])) + "); fi",
        "",
        "cleanup() {",
        '    [ -n "${INIT:-}" ] && kill -KILL "$INIT" 2>/dev/null && wait "$INIT" 2>/dev/null || true',
        '    umount -R "$ROOTFS" 2>/dev/null || umount -l "$ROOTFS" 2>/dev/null || true',
    ]
    mk_cg, rm_cg = _cgroup_lines(spec)
    L += ["    " + x for x in rm_cg]
    if net_own:
        L += ['    ip link del "$BRIDGE" 2>/dev/null || true',
              '    nft delete table ip "replay_$BRIDGE" 2>/dev/null || true']
    L += ['    rm -rf "$R"', "}", "trap cleanup EXIT", "trap 'exit 143' TERM INT", 'mkdir -p "$R"', ""]
    L += ["# ---- 1. the helper for the last steps (rlimits, ids, capabilities, no_new_privs, exec) ----------",
          'cc -static -O2 -o "$R/replay-exec" "$HELPER_SRC"', "",
          "# ---- 2. the root filesystem: image layers below, a writable layer on top ----------------------",
          'mkdir -p "$UPPER" "$WORK" "$ROOTFS"',
          'mount -t overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" overlay "$ROOTFS"', "",
          "# ---- 3. the cgroup with the container's limits --------------------------------------------------",
          *mk_cg, "",
          "# ---- 4. the files the engine writes for every container ----------------------------------------",
          'echo "$HOSTNAME_" > "$R/hostname"',
          'printf "127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n%s\\t%s\\n" '
          + ('"$ADDRESS"' if net_own else '"127.0.1.1"') + ' "$HOSTNAME_" > "$R/hosts"',
          'grep -v "^nameserver 127\\." /etc/resolv.conf > "$R/resolv.conf" || true', ""]
    if net_own:
        L += ["# ---- 5. the network: a bridge of the replay's own and a veth pair --------------------------",
              'ip link add "$BRIDGE" type bridge', 'ip addr add "$GATEWAY/24" dev "$BRIDGE"',
              'ip link set "$BRIDGE" up',
              'ip link add "$VETH_HOST" type veth peer name "$VETH_CTR"',
              'ip link set "$VETH_HOST" master "$BRIDGE" up',
              "# outbound NAT in a table of the replay's own (ip_forward is left as the host has it)",
              'nft add table ip "replay_$BRIDGE"',
              'nft add chain ip "replay_$BRIDGE" post "{ type nat hook postrouting priority srcnat; }"',
              'nft add rule ip "replay_$BRIDGE" post ip saddr "$SUBNET" oifname != "$BRIDGE" masquerade', ""]
    # ---- the init script: runs inside the new namespaces ----
    init = ["# runs inside the new namespaces (unshare --fork made it PID 1)", "set -euo pipefail",
            'read -r _ < "$R/go"                         # wait until the host side is ready',
            "ip link set lo up" if "network" in nss else ":"]
    if net_own:
        init += ['ip link set "$VETH_CTR" name eth0', 'ip addr add "$ADDRESS/24" dev eth0', "ip link set eth0 up",
                 'ip route add default via "$GATEWAY"']
    init += ['mount --rbind "$ROOTFS" "$ROOTFS"                # pivot_root needs the new root to be a mount point']
    for m in spec.get("mounts") or []:
        if m["destination"] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            name = m["destination"].rsplit("/", 1)[1]
            m = dict(m, source=f"$R/{name}")
            init += [f'touch "$ROOTFS{m["destination"]}"',
                     f'mount --bind "$R/{name}" "$ROOTFS{m["destination"]}"']
            continue
        init += _mount_lines(m)
        if m["destination"] == "/dev":
            for name, typ, major, minor in DEVICES:
                init.append(f'mknod -m 666 "$ROOTFS/dev/{name}" {typ} {major} {minor}')
            init += ['ln -s /proc/self/fd "$ROOTFS/dev/fd"', 'ln -s /proc/self/fd/0 "$ROOTFS/dev/stdin"',
                     'ln -s /proc/self/fd/1 "$ROOTFS/dev/stdout"', 'ln -s /proc/self/fd/2 "$ROOTFS/dev/stderr"',
                     'ln -s pts/ptmx "$ROOTFS/dev/ptmx"']
    if "uts" in nss:
        init.append('hostname "$HOSTNAME_"')
    for key, val in (linux.get("sysctl") or {}).items():
        init.append(f"sysctl -q -w {q(key + '=' + str(val))}")
    for p in linux.get("maskedPaths") or []:
        init.append(f'if [ -d "$ROOTFS{p}" ]; then mount -t tmpfs -o ro tmpfs "$ROOTFS{p}"; '
                    f'elif [ -e "$ROOTFS{p}" ]; then mount --bind "$ROOTFS/dev/null" "$ROOTFS{p}"; fi   # masked')
    for p in linux.get("readonlyPaths") or []:
        init.append(f'if [ -e "$ROOTFS{p}" ]; then mount --bind "$ROOTFS{p}" "$ROOTFS{p}" && '
                    f'mount -o remount,bind,ro "$ROOTFS{p}"; fi   # read-only')
    if (spec.get("root") or {}).get("readonly"):
        init.append('mount -o remount,bind,ro "$ROOTFS"')
    bpf = _seccomp_programs(linux.get("seccomp"))
    init += ['touch "$ROOTFS/dev/.replay-exec" && mount --bind "$R/replay-exec" "$ROOTFS/dev/.replay-exec"']
    init += [f'cp "$R/seccomp-{n}.bpf" "$ROOTFS/dev/.replay-seccomp-{n}"   # the helper reads it, then removes it'
             for n in range(len(bpf))]
    init += ['cd "$ROOTFS"', "pivot_root . .          # the rootfs becomes /; the old root on top"]
    helper = ["/dev/.replay-exec", "--detach-old-root", "--self", "/dev/.replay-exec",
              "--uid", str(user.get("uid", 0)), "--gid", str(user.get("gid", 0)),
              "--groups", ",".join(str(g) for g in user.get("additionalGids") or []),
              "--caps", f"{caps:x}", "--cwd", proc.get("cwd") or "/"]
    if proc.get("noNewPrivileges"):
        helper.append("--nnp")
    for r in proc.get("rlimits") or []:
        helper += ["--rlimit", f"{r['type']}={r['soft']}:{r['hard']}"]
    for e in proc.get("env") or []:
        helper += ["--env", e]
    for n in range(len(bpf)):
        helper += ["--seccomp", f"/dev/.replay-seccomp-{n}"]
    init.append("exec " + " ".join(q(h) for h in helper) + ' -- "$@"')
    if bpf:
        L += ["# ---- the seccomp filter: the BPF programs libseccomp compiled from the spec's profile (no",
              "# standard tool loads one; the helper does, with seccomp(2))"]
        for n, prog in enumerate(bpf):
            L += [f'base64 -d > "$R/seccomp-{n}.bpf" <<\'BPF\'', *_b64_lines(prog), "BPF"]
        L.append("")
    L += ["# ---- 6. the container's init, written to a file and run by unshare in the new namespaces -------",
          'cat > "$R/init.sh" <<\'INIT\'', *init, "INIT",
          'mkfifo "$R/go"',
          "# join the cgroup first, then unshare: the cgroup namespace's root is the container's cgroup"]
    join = ('for f in /sys/fs/cgroup/*/"$CGROUP"/cgroup.procs /sys/fs/cgroup/"$CGROUP"/cgroup.procs; do '
            '[ -e "$f" ] && echo $BASHPID > "$f"; done')
    flags = " ".join(NS_FLAGS[n] for n in ("mount", "uts", "ipc", "pid", "network", "cgroup") if n in nss)
    L += [f'( {join}; export R ROOTFS HOSTNAME_ VETH_CTR ADDRESS GATEWAY',
          f'  exec unshare {flags} --fork --propagation private --kill-child '
          'bash "$R/init.sh" "${CMD[@]}" ) &',
          "UNSHARE=$!",
          "# the container's PID 1 is unshare's child",
          'for _ in $(seq 100); do INIT=$(cat /proc/$UNSHARE/task/$UNSHARE/children 2>/dev/null | tr -d " "); '
          '[ -n "$INIT" ] && break; sleep 0.05; done']
    if net_own:
        L += ['ip link set "$VETH_CTR" netns "$INIT"           # the veth end goes into its network namespace']
    L += ['echo go > "$R/go"', 'echo "replayed: PID $INIT on the host" >&2',
          'wait "$UNSHARE" || rc=$?', 'exit "${rc:-0}"']
    return "\n".join(L) + "\n"


# ---- --check: the replayed container against the real one --------------------------------------------
def _compare(real: dict, rep: dict) -> list[tuple[str, str, str, bool]]:
    rows = []

    def row(what, a, b):
        rows.append((what, str(a), str(b), a == b))

    row("own namespaces", sorted(n["type"] for n in real["Namespaces"] if n["own"]),
        sorted(n["type"] for n in rep["Namespaces"] if n["own"]))
    for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        row(k, real["Process"]["capabilities"][k]["hex"], rep["Process"]["capabilities"][k]["hex"])
    row("uid / gid", (real["Process"]["uid"].split()[0], real["Process"]["gid"].split()[0]),
        (rep["Process"]["uid"].split()[0], rep["Process"]["gid"].split()[0]))
    row("no_new_privs", real["Process"]["no_new_privs"], rep["Process"]["no_new_privs"])
    row("seccomp", real["Process"]["seccomp"], rep["Process"]["seccomp"])

    def mounts(r):
        return sorted((m["target"], m["fstype"], m["options"].split(",")[0]) for m in r["Mounts"]["mounts"])

    ma, mb = mounts(real), mounts(rep)
    rows.append(("mounts (target, type, ro/rw)",
                 f"{len(ma)} mounts" + ("" if ma == mb else f", only here: {sorted(set(ma) - set(mb))}"),
                 f"{len(mb)} mounts" + ("" if ma == mb else f", only here: {sorted(set(mb) - set(ma))}"), ma == mb))
    row("masked paths in force", sorted(m["path"] for m in real["Mounts"]["masked"] if m["in_force"]),
        sorted(m["path"] for m in rep["Mounts"]["masked"] if m["in_force"]))
    row("read-only paths in force", sorted(m["path"] for m in real["Mounts"]["readonly"] if m["in_force"]),
        sorted(m["path"] for m in rep["Mounts"]["readonly"] if m["in_force"]))
    for k in ("memory_limit", "pids_limit"):
        row(f"cgroup {k}", (real["Cgroup"].get("counters") or {}).get(k), (rep["Cgroup"].get("counters") or {}).get(k))

    def ifaces(r):  # the replay's addresses are its own subnet's: compare names and that one is set
        return sorted((i["name"], any(":" not in a for a in i["addresses"])) for i in r["Network"]["interfaces"])

    row("interfaces (name, has IPv4)", ifaces(real), ifaces(rep))
    row("uid_map", real["IdMaps"]["uid_map"], rep["IdMaps"]["uid_map"])
    return rows


def check(ref: str, *, timeout: float = 60) -> tuple[list, bool]:
    """Run the replay of a running container and compare it with the real one."""
    import signal
    import subprocess
    import tempfile
    import time

    from minidock.errors import MinidockError
    from minidock.labs import kernelview
    from minidock.state import containers

    rec, real = kernelview.for_container(ref)
    with open(os.path.join(containers.cdir(rec["Id"]), "bundle", "config.json")) as f:
        spec = json.load(f)
    with tempfile.TemporaryDirectory(prefix="minidock-replay-check-") as tmp:
        path = os.path.join(tmp, "replay.sh")
        with open(path, "w") as f:
            f.write(script(rec, spec, workdir=os.path.join(tmp, "r")))
        err = open(os.path.join(tmp, "stderr"), "w+")
        p = subprocess.Popen(["bash", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=True)
        try:
            pid = None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and p.poll() is None:
                err.seek(0)
                for line in err.read().splitlines():
                    if line.startswith("replayed: PID "):
                        pid = int(line.split()[2])
                if pid:
                    comm = kernelview.read_text(f"/proc/{pid}/comm").strip()
                    if comm and comm not in ("bash", ".replay-exec", "replay-exec", "unshare"):
                        break  # the container's own command runs now
                time.sleep(0.05)
            else:
                err.seek(0)
                raise MinidockError(f"the replay did not start its command: {err.read().strip()[-600:]}")
            fake = dict(rec, Id=f"replay-{rec['Id'][:8]}", State=dict(rec["State"], Pid=pid))
            rep = kernelview.report(fake, spec)
            rows = _compare(real, rep)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            err.close()
    return rows, all(r[3] for r in rows)
