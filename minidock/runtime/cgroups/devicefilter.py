"""cgroup v2 device rules: an eBPF program the kernel runs at every open() and mknod() of a device.

cgroup v1 has a `devices` controller with devices.allow/devices.deny files. cgroup v2 has no such
files: a runtime compiles the rules into a small BPF_PROG_TYPE_CGROUP_DEVICE program and attaches
it to the container's cgroup (bpf(BPF_PROG_LOAD) + bpf(BPF_PROG_ATTACH)), as runc and crun do.
Without it a container with CAP_MKNOD could `mknod /tmp/sda b 8 0` and read the host's disk.

The program gets a `struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}` where
access_type = (access << 16) | type, and returns 1 (allow) or 0 (EPERM). The rules keep the v1
meaning: a new cgroup allows everything, an "a *:* rwm" rule resets to allow or deny all, and
later rules override earlier ones (the program tests them last-first; the first match decides).

    r2 = ctx->access_type & 0xffff      (1 block, 2 char)
    r3 = ctx->access_type >> 16         (1 mknod, 2 read, 4 write)
    r4 = ctx->major; r5 = ctx->minor
    for each rule, last first:
        if r2 != type: skip                        (unless type "a")
        allow: if (r3 & access) != r3: skip        (unless access "rwm")
        deny:  if (r3 & access) == 0: skip         (asking for rw where w is denied: denied)
        if r4 != major: skip; if r5 != minor: skip (unless a wildcard)
        return allow
    return default
"""

from __future__ import annotations

import struct

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE

# eBPF opcodes (linux/bpf_common.h, linux/bpf.h)
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W:   dst = *(u32 *)(src + off)
AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
MOV32_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K
MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
EXIT = 0x95  # BPF_JMP | BPF_EXIT


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One `struct bpf_insn` (8 bytes, little-endian)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _wild(v) -> bool:
    return v is None or v == -1 or v == "*"


def _access_bits(access: str | None) -> int:
    bits = 0
    for ch in access or "rwm":
        bits |= _ACCESS.get(ch, 0)
    return bits or _ALL


def normalize(rules: list[dict]) -> tuple[bool, list[dict]]:
    """(default allow?, the rules that still matter, in order) — v1's semantics."""
    default, kept = True, []
    for r in rules:
        typ = r.get("type") or "a"
        if typ == "a" and _wild(r.get("major")) and _wild(r.get("minor")) and _access_bits(r.get("access")) == _ALL:
            default, kept = bool(r.get("allow")), []  # "a *:* rwm": everything allowed / denied
            continue
        kept.append(r)
    return default, kept


def program(rules: list[dict]) -> bytes:
    """Compile OCI linux.resources.devices rules into the filter's instructions."""
    default, kept = normalize(rules)
    out = [insn(LDX_MEM_W, 2, 1, 0), insn(AND32_K, 2, imm=0xFFFF),
           insn(LDX_MEM_W, 3, 1, 0), insn(RSH32_K, 3, imm=16),
           insn(LDX_MEM_W, 4, 1, 4), insn(LDX_MEM_W, 5, 1, 8)]
    for r in reversed(kept):
        tests: list[tuple] = []  # (code, dst, src, imm) of each "skip this rule" jump, with its setup
        typ = r.get("type") or "a"
        if typ in ("b", "c"):
            tests.append(([], (JNE_K, 2, 0, DEV_BLOCK if typ == "b" else DEV_CHAR)))
        bits = _access_bits(r.get("access"))
        if bits != _ALL:
            setup = [insn(MOV32_X, 1, 3), insn(AND32_K, 1, imm=bits)]
            if r.get("allow"):  # allow only what the rule names: every requested bit in it
                tests.append((setup, (JNE_X, 1, 3, 0)))
            else:  # deny a request that asks for any of the rule's bits (rw asked, w denied)
                tests.append((setup, (JEQ_K, 1, 0, 0)))
        if not _wild(r.get("major")):
            tests.append(([], (JNE_K, 4, 0, int(r["major"]))))
        if not _wild(r.get("minor")):
            tests.append(([], (JNE_K, 5, 0, int(r["minor"]))))
        block: list = []
        for setup, jump in tests:
            block += setup
            block.append(jump)
        block += [insn(MOV32_K, 0, imm=1 if r.get("allow") else 0), insn(EXIT)]
        for i, item in enumerate(block):  # jumps skip to the end of this rule's block
            if isinstance(item, tuple):
                code, dst, src, imm = item
                block[i] = insn(code, dst, src, off=len(block) - i - 1, imm=imm)
        out += block
    out += [insn(MOV32_K, 0, imm=1 if default else 0), insn(EXIT)]
    return b"".join(out)


def allows(rules: list[dict], typ: str, major: int, minor: int, access: str) -> bool:
    """What the program decides, computed in Python (for tests and for explaining)."""
    default, kept = normalize(rules)
    want = _access_bits(access)
    for r in reversed(kept):
        rt = r.get("type") or "a"
        if rt != "a" and rt != typ:
            continue
        bits = _access_bits(r.get("access"))
        if (want & bits != want) if r.get("allow") else not (want & bits):
            continue
        if not _wild(r.get("major")) and int(r["major"]) != major:
            continue
        if not _wild(r.get("minor")) and int(r["minor"]) != minor:
            continue
        return bool(r.get("allow"))
    return default


def describe(rules: list[dict]) -> str:
    """The rules as v1 would write them, for --explain."""
    default, kept = normalize(rules)
    parts = ["allow all" if default else "deny all"]
    for r in kept:
        mj = "*" if _wild(r.get("major")) else r["major"]
        mn = "*" if _wild(r.get("minor")) else r["minor"]
        verdict = "allow" if r.get("allow") else "deny"
        parts.append(f"{verdict} {r.get('type') or 'a'} {mj}:{mn} {r.get('access') or 'rwm'}")
    return "; ".join(parts)
