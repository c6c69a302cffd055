"""Probes as the kubelet runs them: exec, httpGet, tcpSocket; Kubernetes' defaults and thresholds.

httpGet and tcpSocket probes connect from the host (the controller's network namespace) to the
pod's IP, as the kubelet does; an exec probe runs the command inside the container through the
engine's exec path (minidock/engine/health.py's ``run_probe``, the runner of Docker health
checks), killed at timeoutSeconds.

State per probe and container is kept in the pod record (``probes``): consecutive successes and
failures, the time of the last run; a probe result only changes the outcome after
successThreshold / failureThreshold consecutive results (Kubernetes' semantics).
"""

from __future__ import annotations

import socket
import time

from minidock.apps import objects


def run_exec(cid: str, command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in container ``cid`` through the engine's probe runner (the exec path,
    killed at the timeout): (exit code, output); -1 when it could not run or timed out."""
    from minidock.engine import health

    r = health.run_probe(cid, command, int(timeout * 1e9), exec_events=False)
    return r.exit_code, r.output


def _port(port, cspec: dict) -> int:
    if isinstance(port, int):
        return port
    for p in cspec.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in the container's ports")


def run_once(probe: dict, ip: str, cid: str, cspec: dict) -> tuple[bool, str]:
    timeout = probe["timeoutSeconds"]
    try:
        if "exec" in probe:
            code, out = run_exec(cid, probe["exec"]["command"], timeout)
            return code == 0, f"exit code {code}: {out.strip()[:200]}" if code else ""
        if "tcpSocket" in probe:
            with socket.create_connection((ip, _port(probe["tcpSocket"]["port"], cspec)), timeout=timeout):
                return True, ""
        hg = probe["httpGet"]
        port = _port(hg["port"], cspec)
        path = hg.get("path") or "/"
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in hg.get("httpHeaders") or [])
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.32\r\n"
                f"{headers}Connection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(1024)
                if not chunk:
                    break
                head += chunk
        status = head.split(b"\r\n", 1)[0].split()
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"
    except (OSError, ValueError) as e:
        return False, f"{type(e).__name__}: {e}"


def step(pod: dict, now: float | None = None) -> list[tuple[str, str, str]]:
    """Run the probes that are due; update pod["probes"]; return events (kind, container, message).

    Results: pod["probes"][container][kind] = {"ok": bool|None, "succ": n, "fail": n, "last": t}.
    kind in startup, liveness, readiness. ok None = not decided yet.
    """
    now = time.time() if now is None else now
    out = []
    states = pod.setdefault("probes", {})
    started = pod["started"] if pod.get("started") is not None else now
    for c, cspec in zip(pod["containers"], pod["spec"].get("containers") or []):
        st = states.setdefault(c["name"], {})
        startup_ok = True
        for kind in ("startup", "liveness", "readiness"):
            probe = objects.probe_defaults(cspec.get(f"{kind}Probe"))
            if probe is None:
                continue
            s = st.setdefault(kind, {"ok": None, "succ": 0, "fail": 0, "last": 0})
            if kind == "startup" and s["ok"]:
                continue
            if kind != "startup" and not startup_ok:
                continue
            if now - started < probe["initialDelaySeconds"] or now - s["last"] < probe["periodSeconds"]:
                if kind == "startup":
                    startup_ok = bool(s["ok"])
                continue
            s["last"] = now
            ok, msg = run_once(probe, pod.get("ip", ""), c["id"], cspec)
            if ok:
                s["succ"], s["fail"] = s["succ"] + 1, 0
                threshold = 1 if kind in ("startup", "liveness") else probe["successThreshold"]
                if s["succ"] >= threshold:
                    s["ok"] = True
            else:
                s["succ"], s["fail"] = 0, s["fail"] + 1
                out.append((kind, c["name"], f"{kind.capitalize()} probe failed: {msg}"))
                if s["fail"] >= probe["failureThreshold"]:
                    s["ok"] = False
            if kind == "startup":
                startup_ok = bool(s["ok"])
    return out


def verdict(pod: dict) -> tuple[bool, str | None]:
    """(ready, container to restart or None) from the probe states."""
    ready = True
    restart = None
    states = pod.get("probes") or {}
    for cspec in pod["spec"].get("containers") or []:
        st = states.get(cspec["name"], {})
        if cspec.get("startupProbe"):
            s = st.get("startup", {})
            if s.get("ok") is False:
                restart = restart or cspec["name"]
            if not s.get("ok"):
                ready = False
                continue
        if cspec.get("livenessProbe") and st.get("liveness", {}).get("ok") is False:
            restart = restart or cspec["name"]
        if cspec.get("readinessProbe") and not st.get("readiness", {}).get("ok"):
            ready = False
    return ready, restart
