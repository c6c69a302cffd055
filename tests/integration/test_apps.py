"""Orchestration, for real: Deployments and Services from Kubernetes YAML (issue 12's proof).

Everything runs inside a throwaway network namespace made for this module (like
test_network.py): minidock commands, their controllers (started on demand, inheriting the
namespace), the pods' bridge, the nftables service maps and the HTTP clients. The pods are
busybox httpd serving "<pod name> <version>". Bounds are the issue's (5 s for a replacement)
with generous polling; nothing else is timed.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO
from tests.netns import make_netns

pytest.importorskip("kubernetes_validate")
pytest.importorskip("yaml")


def _make_netns(docker_firewall: bool = False):
    yield from make_netns("mdapps", docker_firewall=docker_firewall)


@pytest.fixture(scope="module")
def netns(state_root):
    yield from _make_netns()


@pytest.fixture(scope="module")
def docker_netns(state_root):
    yield from _make_netns(docker_firewall=True)


def _kubectl_like(md_env, netns, tmp_path):
    def run(*args, check=False, timeout=120, input=None):
        env = dict(md_env, MINIDOCK_DEFAULT_NETWORK="bridge")
        return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-m", "minidock",
                               *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env,
                              check=check, input=input)

    run.netns = netns
    run.tmp = tmp_path
    yield run
    for kind in ("deployments", "services", "hpa", "pods", "configmaps", "secrets", "pvc"):
        names = run("get", kind, "-o", "name").stdout.split()
        if names:
            run("delete", *names, timeout=180)


@pytest.fixture
def k(md_env, netns, busybox, tmp_path):
    """k("apply", "-f", FILE) runs minidock in the namespace; objects applied are deleted after."""
    yield from _kubectl_like(md_env, netns, tmp_path)


@pytest.fixture
def kd(md_env, docker_netns, busybox, tmp_path):
    """Like k, in a namespace with Docker's firewall (FORWARD policy DROP, br_netfilter)."""
    yield from _kubectl_like(md_env, docker_netns, tmp_path)


SERVE = 'mkdir -p /www && echo \\"$(hostname) $VERSION\\" > /www/index.html && exec httpd -f -p 8080 -h /www'


def web_yaml(version="v1", replicas=3, *, ready_cmd=None, deadline=600, surge=1, unavailable=0, extra_spec="",
             cpu_request=None, node_port=30080) -> str:
    probe = ("          httpGet: {path: /, port: 8080}\n" if ready_cmd is None else
             f"          exec: {{command: {json.dumps(ready_cmd)}}}\n")
    resources = f"        resources: {{requests: {{cpu: {cpu_request}}}}}\n" if cpu_request else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  progressDeadlineSeconds: {deadline}
  selector:
    matchLabels: {{app: web}}
  strategy:
    rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}
{extra_spec}  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        env: [{{name: VERSION, value: {version}}}]
        command: ["sh", "-c", "{SERVE}"]
        ports: [{{containerPort: 8080, name: http}}]
{resources}        readinessProbe:
{probe}          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {{app: web}}
  ports:
  - port: 80
    targetPort: http
    nodePort: {node_port}
"""


def apply(k, text: str, name="web.yaml"):
    p = k.tmp / name
    p.write_text(text)
    r = k("apply", "-f", p)
    assert r.returncode == 0, r.stderr
    return r


def rolled_out(k, timeout=120):
    r = k("rollout", "status", "deployment/web", "--timeout", f"{timeout}s", timeout=timeout + 30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def pods(k) -> list[dict]:
    return json.loads(k("get", "pods", "-o", "json", check=True).stdout)["items"]


def vip(k) -> str:
    return json.loads(k("get", "svc", "web", "-o", "json", check=True).stdout)["spec"]["clusterIP"]


def in_ns(k, *cmd, timeout=120):
    return subprocess.run(["nsenter", f"--net=/run/netns/{k.netns}", *cmd], capture_output=True, text=True,
                          timeout=timeout)


CLIENT = r"""
import os, sys, time, urllib.request
url, out, stop, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(out, "w") as f:
    i = 0
    while (n and i < n) or (not n and not os.path.exists(stop)):
        i += 1
        try:
            body = urllib.request.urlopen(url, timeout=5).read().decode().strip()
        except Exception as e:
            body = "FAIL " + type(e).__name__ + " " + str(e).replace("\n", " ")
        f.write(body + "\n"); f.flush()
        if not n:
            time.sleep(0.02)
"""


def host_requests(k, url: str, n: int) -> list[str]:
    out = k.tmp / f"out-{uuid.uuid4().hex[:6]}"
    r = in_ns(k, sys.executable, "-c", CLIENT, url, str(out), "/nonexistent", str(n), timeout=300)
    assert r.returncode == 0, r.stderr
    return out.read_text().splitlines()


class Background:
    """A client sending requests continuously from the host namespace until stopped."""

    def __init__(self, k, url):
        self.out = k.tmp / f"bg-{uuid.uuid4().hex[:6]}"
        self.stop_file = k.tmp / f"stop-{uuid.uuid4().hex[:6]}"
        self.p = subprocess.Popen(["nsenter", f"--net=/run/netns/{k.netns}", sys.executable, "-c", CLIENT, url,
                                   str(self.out), str(self.stop_file), "0"])

    def stop(self) -> list[str]:
        self.stop_file.write_text("")
        self.p.wait(timeout=60)
        return self.out.read_text().splitlines()


def spread(lines: list[str]) -> collections.Counter:
    return collections.Counter(line.split()[0] for line in lines)


# --- the proof -------------------------------------------------------------------------------------
def test_three_replicas_share_300_requests_by_service_name_and_nodeport(k):
    apply(k, web_yaml())
    rolled_out(k)
    names = sorted(p["metadata"]["name"] for p in pods(k))
    assert len(names) == 3 and all(n.startswith("web-") for n in names)
    # a client container on the apps network: the Service name resolves to the virtual IP
    script = "for i in $(seq 300); do timeout 5 wget -qO- http://web/ || echo FAIL; done"
    r = k("run", "--rm", "--network", "minidock-apps", "busybox", "sh", "-c", script, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 300 and not [x for x in lines if x.startswith("FAIL")], lines[:5]
    counts = spread(lines)
    assert sorted(counts) == names and min(counts.values()) >= 60, counts  # no replica under 20%
    # the long name too
    r = k("run", "--rm", "--network", "minidock-apps", "busybox", "sh", "-c",
          "timeout 5 wget -qO- http://web.default.svc.cluster.local/", timeout=60)
    assert r.stdout.split()[0] in names, r.stdout + r.stderr
    # the NodePort on the host (loopback) and the virtual IP from the host
    counts = spread(host_requests(k, "http://127.0.0.1:30080/", 300))
    assert sorted(counts) == names and min(counts.values()) >= 60, counts
    assert spread(host_requests(k, f"http://{vip(k)}/", 30)).keys() <= set(names)
    # pods are ordinary containers with the pod's labels
    ps = k("ps", "--filter", "label=app=web", "--format", "{{.Names}}").stdout.split()
    assert sorted(ps) == names
    labels = json.loads(k("inspect", names[0], check=True).stdout)[0]["Config"]["Labels"]
    assert labels["app"] == "web" and labels["pod-template-hash"] in names[0]
    assert labels["minidock.apps/revision"] == "1"
    assert "v1" in k("logs", "deployment/web").stdout + k("exec", names[0], "cat", "/www/index.html").stdout
    # the kernel balances: one verdict map entry per ready endpoint
    chain = in_ns(k, "nft", "list", "table", "ip", "minidock").stdout
    assert "numgen random mod 3 vmap" in chain and "10.96." in chain


def test_rolling_update_and_undo_without_a_failed_request(k):
    apply(k, web_yaml("v1"))
    rolled_out(k)
    client = Background(k, "http://127.0.0.1:30080/")
    try:
        time.sleep(1)
        apply(k, web_yaml("v2"))
        rolled_out(k)
        time.sleep(2)  # the last old pod leaves the endpoints, drains, goes
        r = k("rollout", "undo", "deployment/web")
        assert r.stdout.strip() == "deployment.apps/web rolled back", r.stderr
        rolled_out(k)
        time.sleep(2)
    finally:
        lines = client.stop()
    assert lines and not [x for x in lines if x.startswith("FAIL")], [x for x in lines if x.startswith("FAIL")][:5]
    versions = [x.split()[1] for x in lines]
    # in order: v1 ... (v1/v2 mixed while rolling) ... v2 ... (v2/v1 mixed) ... v1 at the end
    first_v2 = versions.index("v2")
    last_v2 = len(versions) - 1 - versions[::-1].index("v2")
    assert versions[0] == "v1" and versions[-1] == "v1" and first_v2 < last_v2
    assert "v3" not in versions
    hist = k("rollout", "history", "deployment/web").stdout.split()
    assert hist[:3] == ["deployment.apps/web", "REVISION", "CHANGE-CAUSE"] and hist[3::2] == ["2", "3"]
    assert all(p["metadata"]["labels"]["minidock.apps/revision"] == "3" for p in pods(k))


def test_kill_of_a_replica_and_of_the_controller_is_repaired(k):
    apply(k, web_yaml(surge=1))
    rolled_out(k)
    state = os.environ["MINIDOCK_ROOT"]
    lock = os.path.join(state, "apps", "controllers", "default.web.lock")
    ctl = int(open(lock).read())
    victim = pods(k)[0]["metadata"]["name"]
    pid = int(k("inspect", "-f", "{{.State.Pid}}", victim, check=True).stdout)
    os.kill(ctl, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    most = 0
    replaced = False
    while time.monotonic() - t0 < 5:
        k("get", "pods")  # any command restarts the controller
        ps = k("ps", "-q", "--filter", "label=app=web").stdout.split()
        most = max(most, len(ps))
        ready = [p for p in pods(k) if p["status"]["conditions"][0]["status"] == "True"]
        if len(ready) == 3 and victim not in {p["metadata"]["name"] for p in ready}:
            replaced = True
            break
        time.sleep(0.2)
    assert replaced, k("get", "pods").stdout
    assert most <= 3 + 1
    assert int(open(lock).read()) != ctl  # a new controller
    counts = spread(host_requests(k, "http://127.0.0.1:30080/", 60))
    assert victim not in counts and len(counts) == 3


def test_rollout_to_a_never_ready_version_stops_at_the_deadline(k):
    apply(k, web_yaml("v1", deadline=8))
    rolled_out(k)
    client = Background(k, "http://127.0.0.1:30080/")
    try:
        apply(k, web_yaml("v3", deadline=8, ready_cmd=["false"]))
        t0 = time.monotonic()
        r = k("rollout", "status", "deployment/web", timeout=120)
        assert r.returncode == 1 and 'deployment "web" exceeded its progress deadline' in r.stderr, r.stdout + r.stderr
        assert time.monotonic() - t0 >= 7
    finally:
        lines = client.stop()
    versions = collections.Counter(x.split()[1] if not x.startswith("FAIL") else "FAIL" for x in lines)
    assert set(versions) == {"v1"}, versions  # old replicas keep serving; v3 never got a request
    st = json.loads(k("get", "deployment", "web", "-o", "json").stdout)["status"]
    prog = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert prog["status"] == "False" and prog["reason"] == "ProgressDeadlineExceeded"
    assert st["availableReplicas"] == 3
    d = k("describe", "deployment/web").stdout
    assert "ProgressDeadlineExceeded" in d and "Events:" in d and "readiness" in d.lower() or "Readiness" in d
    # only one v3 pod was tried (maxSurge 1, maxUnavailable 0)
    v3 = [p for p in pods(k) if p["metadata"]["labels"]["minidock.apps/revision"] == "2"]
    assert len(v3) == 1


def test_autoscaler_scales_up_under_cpu_load_and_down_after(k):
    apply(k, web_yaml(replicas=1, cpu_request="100m"))
    rolled_out(k)
    hpa = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 5}
"""
    apply(k, hpa, "hpa.yaml")
    name = pods(k)[0]["metadata"]["name"]
    burner = k("exec", "-d", name, "sh", "-c", "echo $$ > /tmp/burn.pid; while :; do :; done")
    assert burner.returncode == 0, burner.stderr
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(pods(k)) < 2:
        time.sleep(1)
    assert len(pods(k)) >= 2, k("get", "hpa").stdout
    out = k("get", "hpa").stdout
    assert "Deployment/web" in out and "/50%" in out
    r = k("exec", name, "sh", "-c", "kill $(cat /tmp/burn.pid)")  # stop the load
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([p for p in pods(k) if p["status"].get("phase") == "Running"]) > 1:
        time.sleep(1)
    assert len(pods(k)) == 1, k("get", "pods").stdout
    ev = k("describe", "hpa/web").stdout
    assert "SuccessfulRescale" in ev


def test_kube_generate_play_down_and_refusals(k, busybox):
    r = k("run", "-d", "--name", "gen1", "-e", "A=1", "-p", "18081:80", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    try:
        out = k("kube", "generate", "gen1", check=True).stdout
        import kubernetes_validate
        import yaml

        docs = [d for d in yaml.safe_load_all(out) if d]
        assert docs[0]["kind"] == "Pod" and docs[0]["spec"]["containers"][0]["image"] == "busybox"
        kubernetes_validate.validate(docs[0], "1.32", strict=True)
        # kubectl accepts it too (client-side dry run, no cluster needed)
        path = k.tmp / "gen.yaml"
        path.write_text(out)
        kc = subprocess.run(["kubectl", "apply", "--dry-run=client", "--validate=false", "-f", str(path), "-o", "name"],
                            capture_output=True, text=True)
        if kc.returncode == 0:
            assert "pod/gen1" in kc.stdout
    finally:
        k("rm", "-f", "gen1")
    # a document with an unknown field: refused with its path, nothing applied
    bad = web_yaml().replace("        image: busybox\n", "        image: busybox\n        imagePolicy: Always\n")
    p = k.tmp / "bad.yaml"
    p.write_text(bad)
    r = k("apply", "-f", p)
    assert r.returncode != 0 and 'unknown field "spec.template.spec.containers[0].imagePolicy"' in r.stderr
    assert k("get", "all").stdout.strip() == ""
    # replicas as a string, in the second file of a directory: nothing of the first is applied either
    d = k.tmp / "dir"
    d.mkdir()
    (d / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {greeting: hi}\n")
    (d / "b.yaml").write_text(web_yaml().replace("replicas: 3", 'replicas: "3"'))
    r = k("apply", "-f", d)
    assert r.returncode != 0 and "spec.replicas" in r.stderr and "b.yaml" in r.stderr
    assert k("get", "configmaps").stdout.strip() == ""
    # kube play / down: a pod with a ConfigMap as env and as files, and a PVC as a named volume
    play = """apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello, app.conf: "port=80"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: box, labels: {app: box}}
spec:
  containers:
  - name: box
    image: busybox
    command: [sleep, "300"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}
    volumeMounts:
    - {name: conf, mountPath: /etc/app}
    - {name: data, mountPath: /data}
  volumes:
  - name: conf
    configMap: {name: cfg}
  - name: data
    persistentVolumeClaim: {claimName: data}
"""
    p = k.tmp / "play.yaml"
    p.write_text(play)
    r = k("kube", "play", p)
    assert r.returncode == 0, r.stderr
    assert k("exec", "box", "sh", "-c", "echo $GREETING; cat /etc/app/app.conf").stdout.split() == ["hello", "port=80"]
    assert k("exec", "box", "sh", "-c", "echo kept > /data/f").returncode == 0
    assert "data" in k("volume", "ls", "-q").stdout.split()
    r = k("kube", "down", p)
    assert r.returncode == 0 and 'pod "box" deleted' in r.stdout, r.stdout + r.stderr
    assert k("ps", "-aq").stdout.strip() == ""


def test_delete_retires_everything_and_the_controller_exits(k):
    apply(k, web_yaml(replicas=2))
    rolled_out(k)
    lock = os.path.join(os.environ["MINIDOCK_ROOT"], "apps", "controllers", "default.web.lock")
    ctl = int(open(lock).read())
    r = k("delete", "deployment/web", "service/web")
    assert r.stdout.splitlines() == ['deployment.apps "web" deleted', 'service "web" deleted'], r.stdout + r.stderr
    assert k("ps", "-aq").stdout.strip() == ""
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(ctl, 0)
            time.sleep(0.1)
    chains = in_ns(k, "nft", "list", "chains", "ip", "minidock").stdout
    assert "svc-default-web" not in chains and "sep-" not in chains
    assert "svc_prerouting" not in chains and "svc_output" not in chains  # journaled, undone with the last Service
    assert "10.96.0.0/16" not in in_ns(k, "ip", "route").stdout
    r = k("get", "deployment", "web")
    assert r.returncode == 1 and "not found" in r.stderr


def test_scale_pause_set_image_resume_recreate_and_pending(k):
    apply(k, web_yaml(replicas=2))
    rolled_out(k)
    assert k("scale", "deployment/web", "--replicas", "3").stdout.strip() == "deployment.apps/web scaled"
    rolled_out(k)
    assert len(pods(k)) == 3
    # paused: a new image waits; resume rolls it out
    assert k("rollout", "pause", "deployment/web").stdout.strip() == "deployment.apps/web paused"
    k("tag", "busybox", "busybox:v2", check=True)
    r = k("set", "image", "deployment/web", "web=busybox:v2")
    assert r.stdout.strip() == "deployment.apps/web image updated", r.stderr
    time.sleep(3)
    assert {p["spec"]["containers"][0]["image"] for p in pods(k)} == {"busybox"}
    assert "DeploymentPaused" in k("describe", "deployment/web").stdout
    assert k("rollout", "resume", "deployment/web").stdout.strip() == "deployment.apps/web resumed"
    rolled_out(k)
    assert {p["spec"]["containers"][0]["image"] for p in pods(k)} == {"busybox:v2"}
    wide = k("get", "deployments", "-o", "wide").stdout
    assert "busybox:v2" in wide and "app=web" in wide
    # Recreate: every old pod is gone before a new one starts
    recreate = web_yaml("v9", replicas=2).replace(
        "  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", "  strategy: {type: Recreate}\n")
    apply(k, recreate)
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        revs = {p["metadata"]["labels"]["minidock.apps/revision"] for p in pods(k)}
        seen.append(revs)
        if revs == {"3"} and len(pods(k)) == 2:
            break
        time.sleep(0.3)
    assert not any(len(r) > 1 for r in seen), seen  # never old and new at once
    rolled_out(k)
    # a pod whose requests do not fit the machine stays Pending, with the scheduler's reason
    big = web_yaml("v1", replicas=1, cpu_request="64", node_port=30081).replace("name: web", "name: big") \
        .replace("app: web", "app: big").replace("{app: web}", "{app: big}")
    apply(k, big, "big.yaml")
    time.sleep(3)
    bigpods = [p for p in pods(k) if p["metadata"]["name"].startswith("big-")]
    assert len(bigpods) == 1 and bigpods[0]["status"]["phase"] == "Pending", bigpods
    assert "Insufficient cpu" in bigpods[0]["status"]["message"]
    assert "FailedScheduling" in k("describe", f"pod/{bigpods[0]['metadata']['name']}").stdout
    assert "Pending" in k("get", "pods").stdout
    k("delete", "deployment/big", "service/big")


def test_a_failing_liveness_probe_replaces_the_pod(k):
    live = web_yaml(replicas=1).replace(
        "        readinessProbe:\n",
        "        livenessProbe:\n          exec: {command: [test, -e, /tmp/alive]}\n"
        "          initialDelaySeconds: 2\n          periodSeconds: 1\n          failureThreshold: 2\n"
        "        readinessProbe:\n")
    live = live.replace("mkdir -p /www &&", "touch /tmp/alive && mkdir -p /www &&")
    apply(k, live)
    rolled_out(k)
    first = pods(k)[0]["metadata"]["name"]
    assert k("exec", first, "rm", "/tmp/alive").returncode == 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        names = [p["metadata"]["name"] for p in pods(k)]
        if first not in names and len(names) == 1:
            break
        time.sleep(0.5)
    assert first not in [p["metadata"]["name"] for p in pods(k)]
    rolled_out(k)
    events = k("describe", f"pod/{first}").stdout + k("describe", "deployment/web").stdout
    assert "Liveness probe failed" in events or "liveness" in events


def test_kube_play_of_podmans_own_generated_yaml(k):
    k("tag", "busybox", "localhost/busybox:latest", check=True)
    src = REPO / "tests" / "unit" / "apps" / "podman-4.3-kube-generate.yaml"
    r = k("kube", "play", src)
    assert r.returncode == 0 and r.stdout.strip() == "pod/web-pod created", r.stdout + r.stderr
    rec = json.loads(k("inspect", "web-pod", check=True).stdout)[0]
    assert "GREETING=hi" in rec["Config"]["Env"]
    assert sorted(rec["HostConfig"]["CapDrop"]) == ["CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW"] or \
        sorted(rec["HostConfig"]["CapDrop"]) == ["AUDIT_WRITE", "MKNOD", "NET_RAW"]
    assert rec["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == "8080"
    r = k("kube", "down", src)
    assert r.returncode == 0 and 'pod "web-pod" deleted' in r.stdout


def test_services_work_behind_dockers_firewall(kd):
    apply(kd, web_yaml())
    rolled_out(kd)
    names = sorted(p["metadata"]["name"] for p in pods(kd))
    script = "for i in $(seq 90); do timeout 5 wget -qO- http://web/ || echo FAIL; done"
    r = kd("run", "--rm", "--network", "minidock-apps", "busybox", "sh", "-c", script, timeout=300)
    lines = r.stdout.splitlines()
    assert len(lines) == 90 and not [x for x in lines if x.startswith("FAIL")], r.stdout[-500:] + r.stderr
    assert sorted(spread(lines)) == names
    counts = spread(host_requests(kd, "http://127.0.0.1:30080/", 90))
    assert sorted(counts) == names, counts


def test_a_pods_containers_share_network_and_ipc(k):
    duo = """apiVersion: v1
kind: Pod
metadata: {name: duo, labels: {app: duo}}
spec:
  containers:
  - {name: a, image: busybox, command: [sleep, "300"]}
  - {name: b, image: busybox, command: [sleep, "300"]}
"""
    apply(k, duo, "duo.yaml")
    ns = {}
    for c in ("duo", "duo-b"):
        r = k("exec", c, "sh", "-c", "for n in net ipc mnt; do readlink /proc/1/ns/$n; done")
        assert r.returncode == 0, r.stderr
        ns[c] = r.stdout.split()
    assert ns["duo"][:2] == ns["duo-b"][:2]  # one network and one IPC namespace per pod
    assert ns["duo"][2] != ns["duo-b"][2]  # each container its own filesystem
    mons = [json.loads(k("inspect", c, check=True).stdout)[0]["State"]["MonitorPid"] for c in ("duo", "duo-b")]
    assert mons[0] and mons[0] == mons[1]  # one monitor per pod, as containerd's shim per sandbox
    labels = json.loads(k("inspect", "duo-b", check=True).stdout)[0]["Config"]["Labels"]
    assert labels["io.kubernetes.pod.name"] == "duo" and labels["io.kubernetes.container.name"] == "b"
    assert "1/2" not in k("get", "pods").stdout and "2/2" in k("get", "pods").stdout
    gen = k("kube", "generate", "duo", check=True).stdout  # a pod gives back its spec, schema-checked
    import yaml

    doc = next(d for d in yaml.safe_load_all(gen) if d)
    assert doc["kind"] == "Pod" and [c["name"] for c in doc["spec"]["containers"]] == ["a", "b"]
    r = k("delete", "pod/duo")
    assert r.stdout.strip() == 'pod "duo" deleted'
    assert k("ps", "-aq").stdout.strip() == ""


def test_get_outputs_describe_service_restart_and_undo_to_revision(k):
    import yaml

    apply(k, web_yaml(replicas=2))
    rolled_out(k)
    doc = yaml.safe_load(k("get", "deployment", "web", "-o", "yaml", check=True).stdout)
    assert doc["kind"] == "Deployment" and doc["status"]["readyReplicas"] == 2
    wide = k("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"] and len(wide) == 3
    assert k("get", "pods", "-l", "app=nothing").stdout.strip() == ""
    svc = k("describe", "service/web").stdout
    ips = sorted(p["status"]["podIP"] for p in pods(k))
    endpoints = next(line for line in svc.splitlines() if line.startswith("Endpoints:"))
    assert sorted(x.split(":")[0] for x in endpoints.split()[1].split(",")) == ips
    assert "NodePort:" in svc and "30080/TCP" in svc
    # -w prints the table, then rows as they change (here: the restart's new pods)
    watch = subprocess.Popen(["nsenter", f"--net=/run/netns/{k.netns}", sys.executable, "-m", "minidock", "get",
                              "pods", "-w"], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        time.sleep(2)
        before = {p["metadata"]["name"] for p in pods(k)}
        assert k("rollout", "restart", "deployment/web").stdout.strip() == "deployment.apps/web restarted"
        rolled_out(k)
        after = {p["metadata"]["name"] for p in pods(k)}
        assert not before & after and len(after) == 2
        time.sleep(2)
    finally:
        watch.terminate()
        out = watch.communicate(timeout=30)[0]
    assert out.startswith("NAME") and all(name in out for name in after), out
    # revisions: 1 (v1), 2 (restart); undo --to-revision 1 makes revision 3 from revision 1's template
    r = k("rollout", "undo", "deployment/web", "--to-revision", "1")
    assert r.returncode == 0, r.stderr
    rolled_out(k)
    hist = k("rollout", "history", "deployment/web").stdout.split()
    assert hist[3::2] == ["2", "3"]
    assert k("rollout", "undo", "deployment/web", "--to-revision", "9").returncode != 0
    detail = k("rollout", "history", "deployment/web", "--revision", "3").stdout
    assert "VERSION" in detail and "restartedAt" not in detail


def test_rollout_to_an_image_that_cannot_be_pulled_stops_with_the_reason(k):
    apply(k, web_yaml("v1", replicas=2, deadline=6))
    rolled_out(k)
    r = k("set", "image", "deployment/web", "web=127.0.0.1:1/nothing:here")  # nothing listens on port 1
    assert r.returncode == 0, r.stderr
    r = k("rollout", "status", "deployment/web", timeout=120)
    assert r.returncode == 1 and "exceeded its progress deadline" in r.stderr, r.stdout + r.stderr
    assert "ErrImagePull" in r.stderr, r.stderr
    d = k("describe", "deployment/web").stdout
    assert "ProgressDeadlineExceeded" in d and "ErrImagePull" in d, d
    ready = [p for p in pods(k) if p["status"]["conditions"][0]["status"] == "True"]
    assert len(ready) == 2 and all(p["spec"]["containers"][0]["image"] == "busybox" for p in ready)
    assert len(spread(host_requests(k, "http://127.0.0.1:30080/", 20))) == 2  # the old replicas keep serving


def test_min_ready_seconds_and_revision_history_limit(k):
    extra = "  minReadySeconds: 3\n  revisionHistoryLimit: 1\n"
    apply(k, web_yaml("v1", replicas=1, extra_spec=extra))
    t0 = time.monotonic()
    rolled_out(k)
    assert time.monotonic() - t0 >= 3  # ready is not available until minReadySeconds have passed
    k("tag", "busybox", "busybox:r2", check=True)
    k("tag", "busybox", "busybox:r3", check=True)
    for image in ("busybox:r2", "busybox:r3"):
        assert k("set", "image", "deployment/web", f"web={image}").returncode == 0
        rolled_out(k)
    hist = k("rollout", "history", "deployment/web").stdout.split()
    assert hist[3::2] == ["2", "3"]  # revision 1 forgotten: one old revision kept
    st = json.loads(k("get", "deployment", "web", "-o", "json").stdout)["status"]
    assert st["availableReplicas"] == 1 and st["observedGeneration"] == 3


PROBES = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: hooks}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      volumes:
      - name: hooks
        persistentVolumeClaim: {claimName: hooks}
      containers:
      - name: web
        image: busybox
        command: [sh, -c, "httpd -f -p 8080 -h / & echo $! > /tmp/httpd.pid; exec sleep 100000"]
        volumeMounts: [{name: hooks, mountPath: /hooks}]
        startupProbe:
          exec: {command: [test, -e, /tmp/started]}
          periodSeconds: 1
          failureThreshold: 600
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            exec: {command: [sh, -c, "echo preStop ran > /hooks/bye"]}
"""


def _ready(k) -> bool:
    ps = pods(k)
    return len(ps) == 1 and all(c.get("ready") for c in ps[0]["status"].get("containerStatuses") or [{}])


def _until(pred, timeout=60.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.5)
    return False


def test_startup_and_tcp_socket_probes_and_the_pre_stop_hook(k):
    apply(k, PROBES, "probes.yaml")
    assert _until(lambda: len(pods(k)) == 1 and pods(k)[0]["status"].get("phase") == "Running")
    pod = pods(k)[0]["metadata"]["name"]
    # the startup probe gates readiness: the port is open, the file is not there
    assert _until(lambda: k("exec", pod, "sh", "-c", "nc -z 127.0.0.1 8080 || netstat -tln | grep -q :8080")
                  .returncode == 0)
    time.sleep(4)  # four periods: readiness would have passed by now without the startup gate
    assert not _ready(k)
    assert k("exec", pod, "touch", "/tmp/started").returncode == 0
    assert _until(lambda: _ready(k)), pods(k)
    # tcpSocket readiness: the listener gone -> not ready (failureThreshold 1), back -> ready
    assert k("exec", pod, "sh", "-c", "kill $(cat /tmp/httpd.pid)").returncode == 0
    assert _until(lambda: not _ready(k)), pods(k)
    assert k("exec", pod, "httpd", "-p", "8080", "-h", "/").returncode == 0  # (it daemonizes)
    assert _until(lambda: _ready(k)), pods(k)
    # preStop runs before the container is stopped: it leaves its file in the claim's volume
    r = k("delete", "deployment/web", timeout=180)
    assert r.returncode == 0, r.stderr
    assert _until(lambda: pods(k) == [])
    r = k("run", "--rm", "--network", "none", "-v", "hooks:/h", "busybox", "cat", "/h/bye")
    assert r.stdout == "preStop ran\n", r.stdout + r.stderr
    k("delete", "pvc/hooks")
    k("volume", "rm", "hooks")
