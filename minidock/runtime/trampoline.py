'''The exec trampoline: the container's program is started by a 384-byte static program run from a
sealed memfd, never directly by the host's Python interpreter (the CVE-2019-5736 class).

Why: the kernel resolves a script's `#!` line in the context of the process that calls execve.
If that process is the runtime's Python, `#!/proc/self/exe` makes the container run the host's
interpreter, whose /proc/PID/exe then opens the host binary: the container can keep that fd and
write the binary once no process runs it (ETXTBSY was the only stop). runc's fix is to run itself
from a sealed memfd copy; copying the interpreter (MBs) per start is too dear, so minidock copies
only this trampoline — `execve(argv[1], &argv[2], envp)`, exit 127 (ENOENT) or 126 (anything
else) if that fails — into a memfd, seals it (no write, grow, shrink, further seals) and execs it
by descriptor (execveat AT_EMPTY_PATH). While the kernel then loads the container's program,
/proc/self/exe is the sealed memfd: `#!/proc/self/exe` runs the trampoline again (harmless) and
no write can reach anything of the host's. The runtime checks what it can before (the program
exists, is executable, is ELF or #!, its interpreter exists) so that Docker's error messages stay;
the trampoline's exit codes cover only races.

Source (x86_64; other architectures exec directly and say so in --explain):

    _start:
        mov     (%rsp), %rcx            /* argc */
        mov     16(%rsp), %rdi          /* argv[1]: the program's path */
        lea     24(%rsp), %rsi          /* &argv[2]: the program's own argv */
        lea     16(%rsp,%rcx,8), %rdx   /* envp = &argv[argc + 1] */
        mov     $59, %eax               /* execve */
        syscall
        mov     $126, %edi              /* failed: 126 (cannot run), 127 if ENOENT (not found) */
        cmp     $-2, %eax
        jne     1f
        mov     $127, %edi
    1:  mov     $60, %eax               /* exit */
        syscall

Built with `as -o t.o t.S && ld -static -nostdlib -n -N --build-id=none -s -o t t.o`
(tests/unit/test_trampoline.py rebuilds it where binutils exist and compares the bytes).
'''

from __future__ import annotations

import os

SOURCE = __doc__.split("Source (x86_64", 1)[1].split("\n\n", 1)[1].split("\n\nBuilt with", 1)[0]

X86_64 = bytes.fromhex(
    "7f454c4602010100000000000000000002003e000100000078004000000000004000000000000000c000000000000000"
    "000000004000380001004000030002000100000007000000780000000000000078004000000000007800400000000000"
    "300000000000000030000000000000000100000000000000488b0c24488b7c2410488d742418488d54cc10b83b000000"
    "0f05bf7e00000083f8fe7505bf7f000000b83c0000000f05002e7368737472746162002e746578740000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000b00000001000000070000000000000078004000000000007800000000000000"
    "300000000000000000000000000000000100000000000000000000000000000001000000030000000000000000000000"
    "0000000000000000a8000000000000001100000000000000000000000000000001000000000000000000000000000000")


def image() -> bytes | None:
    """The trampoline for this machine, or None (then the runtime execs directly)."""
    return X86_64 if os.uname().machine == "x86_64" else None
