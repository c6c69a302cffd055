"""One small controller process per Deployment: desired state without a central daemon.

Found through a lock file: the running controller holds ``apps/controllers/<ns>.<name>.lock``
(flock). Any command that needs it (apply, get, describe, scale, rollout, ...) calls
``ensure(ns, name)``: if the lock is free, nobody runs it, and it is started (``python -m
minidock.apps.controller NS NAME``, its own session, output in ``<lock>.log``). A controller that
was killed is so restarted by the next command; it adopts the pods it finds on disk. When its
Deployment is deleted, it retires its pods and exits.

Each pass of the loop (every 0.5 s): refresh pods (a dead container -> the pod is replaced),
run the probes that are due (liveness failure -> replaced; readiness -> endpoints), step the pods
being retired (out of the Services first, preStop, SIGTERM, SIGKILL after the grace period),
adopt the template (a new template = a new revision; a known one = that revision renumbered, as
``rollout undo`` does in Kubernetes), autoscale, then scale and roll with Kubernetes' rules
(RollingUpdate maxSurge/maxUnavailable, Recreate, minReadySeconds, progressDeadlineSeconds,
paused, revisionHistoryLimit), and write the status for `get`/`describe`.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import signal
import subprocess
import sys
import time

from minidock.apps import objects, pods, probes, services, store

LOOP = 0.5
HPA_SAMPLE = 2.0  # seconds of CPU counters per utilization sample (metrics-server uses a window too)
DRAIN = 1.0  # seconds between leaving the Services and SIGTERM: in-flight connections finish


def lock_path(ns: str, name: str):
    return store.root() / "controllers" / f"{ns}.{name}.lock"


def running(ns: str, name: str) -> bool:
    p = lock_path(ns, name)
    if not p.exists():
        return False
    fd = os.open(p, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def ensure(ns: str, name: str) -> None:
    """Start the Deployment's controller unless it runs (the flock says)."""
    if running(ns, name):
        return
    p = lock_path(ns, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    log = open(f"{p}.log", "a")
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    subprocess.Popen(
        [sys.executable, "-m", "minidock.apps.controller", ns, name],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env=env,
        close_fds=True,
    )
    log.close()
    deadline = time.monotonic() + 5
    while not running(ns, name) and time.monotonic() < deadline:
        time.sleep(0.02)


def ensure_all(ns: str | None = None) -> None:
    for d in store.listing("deployments", ns):
        ensure(d["metadata"]["namespace"], d["metadata"]["name"])


def wait_gone(ns: str, name: str, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while running(ns, name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# --- the loop -----------------------------------------------------------------------------------------
class Controller:
    def __init__(self, ns: str, name: str):
        self.ns, self.name = ns, name
        self.owner = f"deployments/{name}"
        self.stop = False
        self.cpu_prev: dict[str, tuple[float, int]] = {}
        self.hpa_recs: list[tuple[float, int]] = []

    def event(self, reason: str, message: str, type_: str = "Normal", kind: str = "Deployment", name=None):
        store.event(self.ns, kind, name or self.name, reason, message, type_)

    # pods ------------------------------------------------------------------------------------------
    def live_pods(self) -> list[dict]:
        return store.pods(self.ns, self.owner)

    def check_pod(self, pod: dict, now: float) -> bool:
        """Refresh one pod; False when it is gone (dead and removed). Returns whether to keep it."""
        if pod.get("terminating"):
            return True
        if pod["phase"] == "Pending":
            return True
        if pod["phase"] == "Failed":
            if now - pod.get("failedAt", now) > 5:  # back off, then let the count recreate it
                pods.remove(pod)
                return False
            pod.setdefault("failedAt", now)
            store.put_pod(pod)
            return True
        states = pods.container_states(pod)
        if not states or not all(s.get("Running") for s in states):
            code = next((s.get("ExitCode") for s in states if s and not s.get("Running")), None)
            self.event(
                "Killing",
                f"Pod {pod['name']}: container exited (code {code}); replacing it",
                "Warning",
                "Pod",
                pod["name"],
            )
            pod["ready"] = False
            store.put_pod(pod)
            self.sync_needed = True
            pods.terminate_now(pod)
            return False
        for _kind, _cname, msg in probes.step(pod, now):
            self.event("Unhealthy", msg, "Warning", "Pod", pod["name"])
        ready, restart = probes.verdict(pod)
        if restart:
            self.event(
                "Killing",
                f"Container {restart} failed liveness probe, will be restarted (pod replaced)",
                "Normal",
                "Pod",
                pod["name"],
            )
            pod["ready"] = False
            store.put_pod(pod)
            self.sync_needed = True
            pods.terminate_now(pod)
            return False
        if ready != pod.get("ready"):
            pod["ready"] = ready
            pod["readySince"] = now if ready else None
            self.sync_needed = True
        store.put_pod(pod)
        return True

    def retire(self, pod: dict, now: float) -> None:
        if pod.get("terminating"):
            return
        pod["terminating"] = {"stage": "draining", "since": now}
        pod["ready"] = False
        store.put_pod(pod)
        self.sync_needed = True
        self.event("Killing", f"Stopping container(s) of pod {pod['name']}", "Normal", "Pod", pod["name"])

    def step_terminating(self, pod: dict, now: float) -> None:
        t = pod["terminating"]
        if not pod["containers"]:
            pods.remove(pod)
            return
        if t["stage"] == "draining":
            if now - t["since"] < DRAIN:
                return
            pods.run_pre_stop(pod)
            pods.signal_pod(pod, signal.SIGTERM)
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            t.update(stage="signalled", killAt=time.time() + grace)
            store.put_pod(pod)
            return
        if not any(s.get("Running") for s in pods.container_states(pod)):
            pods.remove(pod)
        elif now >= t["killAt"]:
            pods.terminate_now(pod)

    # resources (a scheduler's fit check) ----------------------------------------------------------
    def fits(self, spec: dict) -> str | None:
        import psutil

        cpu = mem = 0
        for p in store.pods():
            if p.get("phase") in ("Running",) or p.get("terminating"):
                for c in p["spec"].get("containers") or []:
                    req = (c.get("resources") or {}).get("requests") or {}
                    cpu += objects.cpu_millis(req.get("cpu", 0))
                    mem += objects.memory_bytes(req.get("memory", 0))
        want_cpu = want_mem = 0
        for c in spec.get("containers") or []:
            req = (c.get("resources") or {}).get("requests") or {}
            want_cpu += objects.cpu_millis(req.get("cpu", 0))
            want_mem += objects.memory_bytes(req.get("memory", 0))
        missing = []
        if want_cpu and cpu + want_cpu > (os.cpu_count() or 1) * 1000:
            missing.append("Insufficient cpu")
        if want_mem and mem + want_mem > psutil.virtual_memory().total:
            missing.append("Insufficient memory")
        if missing:
            return f"0/1 nodes are available: {', '.join('1 ' + m for m in missing)}."
        return None

    def new_pod(self, rev: dict) -> None:
        name = pods.new_name(f"{self.name}-{rev['hash']}")
        labels = {"pod-template-hash": rev["hash"], "minidock.apps/revision": str(rev["revision"])}
        why = self.fits(rev["template"].get("spec") or {})
        if why:
            self.pending(name, rev, labels, why)
            return
        pod = pods.create(self.ns, name, rev["template"], self.owner, labels)
        if pod["phase"] == "Failed":
            self.event("Failed", f"Pod {name}: {pod['reason']}: {pod['message']}", "Warning", "Pod", name)
        else:
            self.event("SuccessfulCreate", f"Created pod: {name}", "Normal", "ReplicaSet", f"{self.name}-{rev['hash']}")

    def pending(self, name: str, rev: dict, labels: dict, why: str) -> None:
        tmpl = rev["template"]
        pod = {
            "name": name,
            "namespace": self.ns,
            "owner": self.owner,
            "uid": os.urandom(16).hex(),
            "labels": dict((tmpl.get("metadata") or {}).get("labels") or {}) | labels,
            "created": time.time(),
            "creationTimestamp": store.now(),
            "phase": "Pending",
            "ready": False,
            "containers": [],
            "ip": "",
            "restarts": 0,
            "reason": "Unschedulable",
            "message": why,
            "hash": rev["hash"],
            "revision": str(rev["revision"]),
            "spec": tmpl.get("spec") or {},
        }
        store.put_pod(pod)
        self.event("FailedScheduling", why, "Warning", "Pod", name)

    def try_schedule(self, pod: dict, revs: dict) -> None:
        rev = revs.get(pod["hash"])
        if rev is None or self.fits(pod["spec"]):
            return
        store.remove_pod(self.ns, pod["name"])
        p = pods.create(
            self.ns,
            pod["name"],
            rev["template"],
            self.owner,
            {"pod-template-hash": rev["hash"], "minidock.apps/revision": str(rev["revision"])},
        )
        self.event("Scheduled", f"Successfully assigned {self.ns}/{p['name']}", "Normal", "Pod", p["name"])

    # revisions -------------------------------------------------------------------------------------
    def revisions(self, dep: dict, status: dict, cfg: dict) -> dict:
        """The current revision record for the template (new, or an old one renumbered)."""
        tmpl = dep["spec"]["template"]
        h = objects.template_hash(tmpl)
        revs = status.setdefault("revisions", [])
        top = max((r["revision"] for r in revs), default=0)
        cur = next((r for r in revs if r["hash"] == h), None)
        if cfg["paused"] and revs:
            return max(revs, key=lambda r: r["revision"])
        cause = (dep["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
        if cur is None:
            cur = {"revision": top + 1, "hash": h, "template": tmpl, "created": store.now(), "changeCause": cause}
            revs.append(cur)
            if top:
                self.event("ScalingReplicaSet", f"New revision {top + 1} ({self.name}-{h}) for the new pod template")
            status["progressTime"] = time.time()
            status.pop("deadlineExceeded", None)
        elif cur["revision"] != top:
            cur["revision"] = top + 1
            cur["changeCause"] = cause
            status["progressTime"] = time.time()
            status.pop("deadlineExceeded", None)
            self.event("DeploymentRollback", f"Rolled back to the template of {self.name}-{h} (now revision {top + 1})")
        return cur

    # autoscaling -----------------------------------------------------------------------------------
    def autoscale(self, dep: dict, cfg: dict, live: list[dict], status: dict, now: float) -> int:
        hpa = next(
            (
                h
                for h in store.listing("horizontalpodautoscalers", self.ns)
                if (h["spec"].get("scaleTargetRef") or {}).get("name") == self.name
            ),
            None,
        )
        if hpa is None:
            status.pop("hpaReplicas", None)
            return cfg["replicas"]
        spec = hpa["spec"]
        lo, hi = spec.get("minReplicas", 1), spec["maxReplicas"]
        target = (
            next(
                ((m.get("resource") or {}).get("target") or {}).get("averageUtilization", 80)
                for m in spec.get("metrics") or [{}]
            )
            if spec.get("metrics")
            else 80
        )
        current = status.get("hpaReplicas") or cfg["replicas"]
        current = min(max(current, lo), hi)
        hname = hpa["metadata"]["name"]
        hst = store.get_status("horizontalpodautoscalers", self.ns, hname)
        utils = []
        for p in live:
            if not p.get("ready") or p.get("terminating") or not p["containers"]:
                continue
            req = sum(
                objects.cpu_millis(((c.get("resources") or {}).get("requests") or {}).get("cpu", 0))
                for c in p["spec"].get("containers") or []
            )
            if not req:
                continue
            used = sum(_cpu_ns(c["id"]) for c in p["containers"])
            prev = self.cpu_prev.get(p["name"])
            if prev is None:
                self.cpu_prev[p["name"]] = (now, used)
            elif now - prev[0] >= HPA_SAMPLE:
                self.cpu_prev[p["name"]] = (now, used)
                millis = (used - prev[1]) / 1e6 / (now - prev[0])
                utils.append(100.0 * millis / req)
        desired = current
        if utils:
            util = sum(utils) / len(utils)
            ratio = util / target
            if abs(ratio - 1.0) > 0.1:
                desired = math.ceil(len(utils) * ratio)  # Kubernetes: ceil(current * metric / target)
            desired = min(max(desired, lo), hi)
            hst["currentCPUUtilizationPercentage"] = int(util)
        behavior = spec.get("behavior") or {}
        down_window = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds", 300)
        up_window = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds", 0)
        if utils:  # a recommendation only from a measurement
            self.hpa_recs.append((now, desired))
        self.hpa_recs = [(t, r) for t, r in self.hpa_recs if now - t <= max(down_window, up_window, 1)]
        if desired > current:
            rec = min(r for t, r in self.hpa_recs if now - t <= max(up_window, 0.001) or t == now)
            new = max(current, rec)
        elif desired < current:
            new = max(r for t, r in self.hpa_recs if now - t <= down_window)
            new = min(new, current)
        else:
            new = current
        if new != current:
            self.event(
                "SuccessfulRescale",
                f"New size: {new}; reason: cpu resource utilization (percentage of "
                f"request) {'above' if new > current else 'below'} target",
                kind="HorizontalPodAutoscaler",
                name=hname,
            )
            hst["lastScaleTime"] = store.now()
        hst.update(
            currentReplicas=current,
            desiredReplicas=new,
            minReplicas=lo,
            maxReplicas=hi,
            targetCPUUtilizationPercentage=target,
        )
        store.put_status("horizontalpodautoscalers", self.ns, hname, hst)
        status["hpaReplicas"] = new
        return new

    def progress(self, status: dict, cur: dict, count: int, now: float) -> None:
        """More new pods than ever for this revision is progress (Kubernetes: the new ReplicaSet
        scaled up); a failed pod replaced by another is not, so a bad image meets the deadline."""
        high = status.get("newHigh") or {}
        if count > high.get(cur["hash"], 0):
            status["newHigh"] = {cur["hash"]: count}
            status["progressTime"] = now

    # one pass ----------------------------------------------------------------------------------------
    def reconcile(self, dep: dict) -> None:
        now = time.time()
        self.sync_needed = False
        cfg = objects.deployment_defaults(dep["spec"])
        status = store.get_status("deployments", self.ns, self.name)
        cur = self.revisions(dep, status, cfg)
        revs = {r["hash"]: r for r in status["revisions"]}
        all_pods = self.live_pods()
        for p in all_pods:
            if p.get("terminating"):
                self.step_terminating(p, now)
        live = [p for p in all_pods if not p.get("terminating") and self.check_pod(p, now)]
        live = [p for p in live if store.get_pod(self.ns, p["name"])]
        for p in live:
            if p["phase"] == "Pending" and not p["containers"]:
                self.try_schedule(p, revs)
        terminating = [p for p in self.live_pods() if p.get("terminating")]
        desired = self.autoscale(dep, cfg, live, status, now)

        def available(p):
            return p.get("ready") and now - (p.get("readySince") or now) >= cfg["minReadySeconds"]

        new = [p for p in live if p["hash"] == cur["hash"]]
        old = [p for p in live if p["hash"] != cur["hash"]]
        surge = objects.int_or_percent(cfg["maxSurge"], desired, True)
        unavail = objects.int_or_percent(cfg["maxUnavailable"], desired, False)
        if surge == 0 and unavail == 0:
            unavail = 1

        def retire_some(candidates, n):
            # not ready first, then the newest (Kubernetes' ranking for scale-down, simplified)
            order = sorted(candidates, key=lambda p: (bool(p.get("ready")), -p.get("created", 0)))
            for p in order[: max(n, 0)]:
                self.retire(p, now)

        if cfg["paused"]:
            pass  # a paused Deployment keeps its pods as they are (only dead ones are replaced)
        if cfg["strategy"] == "Recreate" and old:
            retire_some(old, len(old))
        elif cfg["strategy"] == "Recreate" and terminating and not new:
            pass  # wait until every old pod is gone before the new ones start
        elif not old:
            if len(new) < desired:
                for _ in range(desired - len(new)):
                    self.new_pod(cur)
                self.progress(status, cur, len(new) + desired - len(new), now)
            elif len(new) > desired:
                retire_some(new, len(new) - desired)
        elif not cfg["paused"]:
            total = len(new) + len(old) + len(terminating)
            room = min(desired + surge - total, desired - len(new))
            for _ in range(max(room, 0)):
                self.new_pod(cur)
            if room > 0:
                self.progress(status, cur, len(new) + room, now)
            if len(new) > desired:
                retire_some(new, len(new) - desired)
            min_avail = desired - unavail
            avail_all = sum(1 for p in new + old if available(p))
            unhealthy_old = [p for p in old if not p.get("ready")]
            retire_some(unhealthy_old, len(unhealthy_old))
            can = avail_all - min_avail
            ready_old = sorted([p for p in old if p.get("ready")], key=lambda p: int(p.get("revision") or 0))
            if can > 0 and ready_old:
                for p in ready_old[:can]:
                    self.retire(p, now)
                self.event("ScalingReplicaSet", f"Scaled down old pods of {self.name} by {min(can, len(ready_old))}")
        # status
        live = [p for p in self.live_pods() if not p.get("terminating")]
        new = [p for p in live if p["hash"] == cur["hash"]]
        new_avail = sum(1 for p in new if available(p))
        prev_avail = status.get("updatedAvailable", 0)
        if new_avail > prev_avail:
            status["progressTime"] = now
        status["updatedAvailable"] = new_avail
        complete = len(new) == desired and new_avail == desired and len(live) == desired
        if complete:
            status.pop("deadlineExceeded", None)
            if not status.get("complete") == cur["revision"]:
                status["complete"] = cur["revision"]
                self.event(
                    "RolloutComplete", f'deployment "{self.name}" successfully rolled out (revision {cur["revision"]})'
                )
        elif not cfg["paused"] and now - status.get("progressTime", now) > cfg["progressDeadlineSeconds"]:
            if not status.get("deadlineExceeded"):
                status["deadlineExceeded"] = cur["revision"]
                self.event(
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{self.name}-{cur["hash"]}" has timed out progressing.',
                    "Warning",
                )
        reasons = [f"{p['reason']}: {p['message']}" for p in new
                   if p.get("reason") and p["phase"] in ("Failed", "Pending")]
        if not reasons and not complete:
            # a failed pod is retried (and its record goes): keep the last reason until the rollout ends
            reasons = [status.get("lastReason")] if status.get("lastReason") else []
        if not reasons and not complete:
            unready = [p for p in new if not p.get("ready") and p.get("probes")]
            if unready:
                reasons = [f"pod {unready[0]['name']} is not ready (readiness probe)"]
        status.update(
            observedGeneration=dep["metadata"].get("generation", 1),
            replicas=len(live),
            terminatingReplicas=sum(1 for p in self.live_pods() if p.get("terminating")),
            desired=desired,
            updatedReplicas=len(new),
            readyReplicas=sum(1 for p in live if p.get("ready")),
            availableReplicas=sum(1 for p in live if available(p)),
            currentRevision=cur["revision"],
            currentHash=cur["hash"],
            paused=cfg["paused"],
            lastReason=reasons[0] if reasons else "",
        )
        status["unavailableReplicas"] = max(desired - status["availableReplicas"], 0)
        status["conditions"] = _conditions(status, complete, cfg)
        # history limit: old revisions without pods beyond the limit are forgotten
        in_use = {p["hash"] for p in self.live_pods()}
        olds = sorted([r for r in status["revisions"] if r["hash"] != cur["hash"]], key=lambda r: r["revision"])
        idle = [r for r in olds if r["hash"] not in in_use]
        while len(idle) > cfg["revisionHistoryLimit"]:
            gone = idle.pop(0)
            status["revisions"].remove(gone)
        store.put_status("deployments", self.ns, self.name, status)
        if self.sync_needed:
            services.sync()

    def teardown(self) -> None:
        """The Deployment is gone: retire every pod (out of the Services first), then exit."""
        for p in self.live_pods():
            p["ready"] = False
            p["terminating"] = p.get("terminating") or {"stage": "draining", "since": time.time() - DRAIN}
            store.put_pod(p)
        services.sync()
        deadline = time.time() + 60
        while self.live_pods() and time.time() < deadline:
            for p in self.live_pods():
                self.step_terminating(p, time.time())
            time.sleep(0.2)
        for p in self.live_pods():
            pods.terminate_now(p)
        services.sync()
        store.remove_status("deployments", self.ns, self.name)
        self.event("Deleted", f"Deployment {self.name} deleted")


def _conditions(status: dict, complete: bool, cfg: dict) -> list[dict]:
    avail = status["availableReplicas"] >= status["desired"] - objects.int_or_percent(
        cfg["maxUnavailable"], status["desired"], False
    )
    conds = [
        {
            "type": "Available",
            "status": "True" if avail else "False",
            "reason": "MinimumReplicasAvailable" if avail else "MinimumReplicasUnavailable",
        }
    ]
    if cfg["paused"]:
        conds.append({"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused"})
    elif status.get("deadlineExceeded"):
        conds.append(
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f"ReplicaSet has timed out progressing. {status.get('lastReason') or ''}".strip(),
            }
        )
    else:
        conds.append(
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            }
        )
    return conds


def _cpu_ns(cid: str) -> int:
    try:
        from minidock import paths
        from minidock.runtime.cgroups import open_cgroup

        return int(open_cgroup(f"{paths.cgroup_parent()}/{cid}").stats().get("cpu_usage_ns") or 0)
    except Exception:  # noqa: BLE001 - a pod going away while we read
        return 0


def _reap() -> None:
    """The pods' monitors are our children (the engine forks them): collect the ones that ended."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(ns: str, name: str) -> int:
    p = lock_path(ns, name)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    for attempt in range(40):  # `running()` probes with a brief shared lock: retry a moment
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 39:
                return 0  # another controller of this Deployment runs
            time.sleep(0.05)
    # the pods' monitors are forked from this process (engine run_detached): they must not
    # inherit the lock, or a killed controller would look alive as long as its pods run
    held = [fd]

    def drop_lock_in_child():
        if held:  # once: in the grandchildren the number may name another file by then
            os.close(held.pop())

    os.register_at_fork(after_in_child=drop_lock_in_child)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    c = Controller(ns, name)

    def on_term(*_):
        c.stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not c.stop:
        dep = store.get("deployments", ns, name)
        if dep is None:
            c.teardown()
            break
        try:
            c.reconcile(dep)
        except Exception as e:  # noqa: BLE001 - keep reconciling; the reason is in the log
            import traceback

            print(time.strftime("%H:%M:%S"), "reconcile failed:", e, flush=True)
            traceback.print_exc()
        _reap()
        time.sleep(LOOP)
    with contextlib.suppress(OSError):
        if store.get("deployments", ns, name) is None:
            p.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
