"""`minidock run` as a user sees it: isolation, exit codes, errors, the Docker flags.

Each isolation property is read from inside a real container (PID 1, hostname, mounts,
capabilities, masked and read-only paths), against the real kernel.
"""

import os
import re
import socket

import pytest


def run(md, *args, **kw):
    return md("run", "--rm", *args, **kw)


def test_hello(md, busybox):
    r = run(md, busybox, "echo", "hello from a container")
    assert (r.returncode, r.stdout) == (0, "hello from a container\n")


def test_pid_namespace_pid1_and_no_host_processes(md, busybox):
    r = run(md, busybox, "sh", "-c", "echo $$; ps -o pid,comm > /tmp/ps; cat /tmp/ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1"
    comms = sorted(line.split()[1] for line in lines[2:])
    assert comms == ["ps", "sh"]  # nothing of the host's hundreds of processes


def test_own_hostname(md, busybox):
    r = run(md, "--hostname", "box1", busybox, "hostname")
    assert r.stdout.strip() == "box1"
    assert socket.gethostname() != "box1"
    r = run(md, busybox, "cat", "/etc/hostname")
    assert re.fullmatch(r"[0-9a-f]{12}\n", r.stdout)


def test_own_mount_table(md, busybox):
    r = run(md, busybox, "cat", "/proc/self/mountinfo")
    assert r.returncode == 0
    targets = [line.split()[4] for line in r.stdout.splitlines()]
    root = [line for line in r.stdout.splitlines() if line.split()[4] == "/"]
    assert len(root) == 1 and " - overlay " in root[0], root  # its own root: the image's overlay
    assert not any(t.startswith(("/work", "/tmp/minidock-test", "/boot")) for t in targets)
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/etc/hosts",
            "/etc/hostname", "/etc/resolv.conf"} <= set(targets)


def test_pivot_root_hides_host_filesystem(md, busybox, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("secret")
    r = run(md, busybox, "sh", "-c", f"cat {marker} || echo absent; ls /; cat /proc/1/root/etc/hostname")
    assert "secret" not in r.stdout and "absent" in r.stdout


def test_default_capabilities_like_docker(md, busybox):
    r = run(md, busybox, "grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert caps["CapEff"] == "00000000a80425fb"
    assert caps["CapPrm"] == "00000000a80425fb"
    assert caps["CapBnd"] == "00000000a80425fb"
    assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000"
    r = run(md, busybox, "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "1"]


def test_cap_add_and_drop(md, busybox):
    r = run(md, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", busybox, "grep", "^CapEff", "/proc/self/status")
    assert r.stdout.split()[1] == f"{1 << 12:016x}"
    r = run(md, "--cap-drop", "chown", busybox, "chown", "nobody", "/tmp")
    assert r.returncode != 0


def test_non_root_user_has_no_effective_caps(md, busybox):
    r = run(md, "-u", "nobody", busybox, "sh", "-c", "id; grep ^CapEff /proc/self/status")
    assert "uid=65534(nobody) gid=65534(nogroup)" in r.stdout
    assert "CapEff:\t0000000000000000" in r.stdout


@pytest.mark.parametrize("path", ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"])
def test_masked_paths_unreadable(md, busybox, path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    r = run(md, busybox, "sh", "-c", f"wc -c < {path}; echo ran")
    assert r.returncode == 0 and r.stdout.split() == ["0", "ran"], (r.stdout, r.stderr)  # /dev/null over it


def test_firmware_masked(md, busybox):
    r = run(md, busybox, "ls", "-A", "/sys/firmware")
    assert r.returncode == 0 and r.stdout == ""


@pytest.mark.parametrize("path", ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger"])
def test_readonly_paths(md, busybox, path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this host's kernel")
    r = run(md, busybox, "sh", "-c", f"echo ran; echo x > {path}")
    assert r.stdout == "ran\n", r.stderr  # the container did run: the write itself failed
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr


def test_sys_read_only_and_dev_minimal(md, busybox):
    r = run(md, busybox, "sh", "-c", "touch /sys/x; ls /dev | tr '\\n' ' '")
    assert "Read-only file system" in r.stderr
    devs = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"} <= devs
    assert "sda" not in devs and "vda" not in devs and "kmsg" not in devs


@pytest.mark.parametrize("cmd,code", [
    (["true"], 0),
    (["false"], 1),
    (["sh", "-c", "exit 42"], 42),
    (["/etc/passwd"], 126),
    (["no-such-command"], 127),
    (["/no/such/path"], 127),
])
def test_exit_codes(md, busybox, cmd, code):
    assert run(md, busybox, *cmd).returncode == code


def test_error_messages_name_what_is_missing(md, busybox):
    r = run(md, busybox, "foo")
    assert 'exec: "foo": executable file not found in $PATH' in r.stderr
    r = run(md, busybox, "/no/such/file")
    assert 'exec: "/no/such/file": stat /no/such/file: no such file or directory' in r.stderr
    r = md("run", "--rm", "no-such-image-xyz")
    assert r.returncode == 125 and "no-such-image-xyz" in r.stderr


def test_bad_interpreter(md, busybox, busybox_tar, tmp_path):
    """A script whose #! names a missing interpreter: Docker's wording, exit 127."""
    import io
    import shutil
    import tarfile

    tar = tmp_path / "bad.tar"
    shutil.copy(busybox_tar, tar)
    with tarfile.open(tar, "a") as tf:
        data = b"#!/bin/bash\necho hi\n"
        info = tarfile.TarInfo("s.sh")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
    assert md("import", tar, "badinterp").returncode == 0
    r = run(md, "badinterp", "/s.sh")
    assert r.returncode == 127
    assert "bad interpreter /bin/bash" in r.stderr
    assert md("rmi", "badinterp").returncode == 0


def test_signals_137_and_143(md, busybox):
    r = md("run", "-d", "--name", "sig-kill", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    assert md("kill", "sig-kill").returncode == 0
    assert md("wait", "sig-kill").stdout.strip() == "137"
    md("rm", "sig-kill")
    r = md("run", "-d", "--name", "sig-term", "--init", busybox, "sleep", "60")
    assert r.returncode == 0, r.stderr
    md("kill", "-s", "TERM", "sig-term")
    assert md("wait", "sig-term").stdout.strip() == "143"
    md("rm", "sig-term")


def test_workdir_env_user(md, busybox, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("FROM_FILE=1\nSHARED=file\n")
    r = run(md, "-w", "/new/dir", "-e", "A=b c", "--env-file", str(envfile), "-e", "SHARED=flag",
            "-u", "www-data", busybox, "sh", "-c", 'pwd; echo "$A|$FROM_FILE|$SHARED|$HOME"; id -u; id -G')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "/new/dir"
    assert lines[1] == "b c|1|flag|/var/www"
    assert lines[2] == "33"
    r = run(md, "-u", "nosuchuser", busybox, "true")
    assert r.returncode == 125 and "unable to find user nosuchuser" in r.stderr


def test_env_file_missing_is_clear(md, busybox):
    r = run(md, "--env-file", "/nonexistent/env", busybox, "true")
    assert r.returncode == 125 and "/nonexistent/env" in r.stderr


def test_read_only_rootfs(md, busybox):
    r = run(md, "--read-only", busybox, "sh", "-c", "touch /x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    r = run(md, "--read-only", busybox, "sh", "-c", "touch /dev/shm/x && echo ok")
    assert r.stdout.strip() == "ok"


def test_init_reaps_and_is_pid1(md, busybox):
    r = run(md, "--init", busybox, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    assert r.stdout.splitlines()[0].startswith("/sbin/docker-init -- sh")
    assert r.stdout.splitlines()[1] != "1"


def test_entrypoint_override(md, busybox):
    r = run(md, "--entrypoint", "echo", busybox, "a", "b")
    assert r.stdout == "a b\n"


def test_stdin_with_i(md, busybox):
    r = run(md, "-i", busybox, "sh", "-c", "cat | tr a-z A-Z", input="piped in\n")
    assert r.stdout == "PIPED IN\n"
    r = run(md, busybox, "cat", input="ignored\n")
    assert r.stdout == ""


def test_it_without_terminal_fails(md, busybox):
    r = md("run", "-it", "--rm", busybox, "true", input="")
    assert r.returncode == 1 and "the input device is not a TTY" in r.stderr


def test_network_none_has_only_lo(md, busybox):
    r = run(md, "--network", "none", busybox, "ls", "/sys/class/net")
    assert r.stdout.split() == ["lo"]
    r = run(md, "--network", "none", busybox, "cat", "/sys/class/net/lo/operstate")
    assert r.stdout.strip() in ("unknown", "up")


def test_network_host_shares_stack(md, busybox):
    r = run(md, "--network", "host", busybox, "ls", "/sys/class/net")
    assert set(r.stdout.split()) == set(os.listdir("/sys/class/net"))


def test_rm_leaves_nothing(md, busybox, state_root):
    before = set(os.listdir(state_root / "containers")) if (state_root / "containers").exists() else set()
    assert run(md, busybox, "true").returncode == 0
    assert run(md, busybox, "false").returncode == 1
    assert run(md, busybox, "nonexistent-cmd").returncode == 127  # --rm even when it failed to start
    after = set(os.listdir(state_root / "containers"))
    assert after - before <= {".names"}
    assert md("ps", "-a", "-q").stdout.strip() == ""


def test_explain_prints_each_step(md, busybox):
    r = run(md, "--explain", busybox, "true")
    assert r.returncode == 0
    for expected in ("$ mount -t overlay", "$ unshare --mount --cgroup --uts --ipc --pid --net",
                     "$ pivot_root . .", "$ capsh --drop=", "$ setpriv --no-new-privs",
                     "$ mount --make-rprivate /", "$ hostname "):
        assert expected in r.stderr, expected
    assert r.stderr.index("unshare") < r.stderr.index("pivot_root") < r.stderr.index("PR_CAPBSET_DROP")


def test_old_root_detached_after_pivot_root(md, busybox):
    r = run(md, busybox, "sh", "-c", "grep -c ' / / ' /proc/self/mountinfo")
    assert r.stdout.strip() == "1"  # exactly one root mount: the old root was detached


def test_device_cgroup_blocks_host_disks(md, busybox):
    """CAP_MKNOD is in Docker's default set; the device cgroup is what stops a raw disk read."""
    # (v1: devices.deny; v2: the eBPF device program, runtime/cgroups/devicefilter.py)
    r = run(md, busybox, "sh", "-c", "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert run(md, "--privileged", busybox, "sh", "-c", "mknod /tmp/null c 1 3 && cat /tmp/null").returncode == 0
