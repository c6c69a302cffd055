"""Services' nft ruleset and the probes' thresholds, from records on disk (no root, no kernel)."""

from __future__ import annotations

import pytest

from minidock.apps import probes, services, store


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    return tmp_path


def _svc(name="web", selector=None, node_port=None, target="http"):
    port = {"port": 80, "targetPort": target, "protocol": "TCP"}
    if node_port:
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "NodePort" if node_port else "ClusterIP", "selector": selector or {"app": "web"},
                     "ports": [port]}}


def _pod(name, ip, ready=True, labels=None, terminating=False):
    p = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}, "ready": ready, "ip": ip,
         "spec": {"containers": [{"name": "web", "image": "busybox",
                                  "ports": [{"containerPort": 8080, "name": "http"}]}]}}
    if terminating:
        p["terminating"] = {"stage": "draining", "since": 0}
    store.put_pod(p)


def test_ruleset_has_one_verdict_map_entry_per_ready_endpoint(root):
    svc = services.allocate(_svc(node_port=30080), None)
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    store.put(svc, "services")
    _pod("web-a", "172.31.0.2")
    _pod("web-b", "172.31.0.3")
    _pod("web-c", "172.31.0.4", ready=False)  # not ready: no traffic
    _pod("web-d", "172.31.0.5", terminating=True)  # leaving: out of the Service first
    _pod("db-a", "172.31.0.6", labels={"app": "db"})  # another selector
    script, chains = services.ruleset()
    assert "numgen random mod 2 vmap { 0 : goto sep-default-web-a-8080, 1 : goto sep-default-web-b-8080 }" in script
    assert "dnat to 172.31.0.2:8080" in script and "dnat to 172.31.0.3:8080" in script
    assert "172.31.0.4" not in script and "172.31.0.5" not in script and "172.31.0.6" not in script
    assert "add element ip minidock svc_ips { 10.96.0.10 . tcp . 80 : goto svc-default-web-80 }" in script
    assert "add element ip minidock svc_nodeports { tcp . 30080 : goto svc-default-web-80 }" in script
    assert chains == {"svc-default-web-80", "sep-default-web-a-8080", "sep-default-web-b-8080"}


def test_no_ready_endpoint_means_no_element(root):
    store.put(services.allocate(_svc(), None), "services")
    _pod("web-a", "172.31.0.2", ready=False)
    script, chains = services.ruleset()
    assert "svc_ips {" in script and "add element" not in script and not chains


def test_addresses_and_node_ports_are_kept_and_not_shared(root):
    a = services.allocate(_svc("a", node_port=None), None)
    store.put(a, "services")
    b = services.allocate(_svc("b"), None)
    assert b["spec"]["clusterIP"] != a["spec"]["clusterIP"]
    again = services.allocate(_svc("a"), a)
    assert again["spec"]["clusterIP"] == a["spec"]["clusterIP"]
    np = services.allocate(_svc("n", node_port=None) | {"spec": {**_svc("n")["spec"], "type": "NodePort"}}, None)
    assert 30000 <= np["spec"]["ports"][0]["nodePort"] <= 32767


def _probe_pod(**probe):
    spec = {"containers": [{"name": "web", "image": "busybox",
                            "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1, **probe}}]}
    return {"containers": [{"name": "web", "id": "x"}], "spec": spec, "ip": "10.0.0.1", "started": 0}


def test_readiness_needs_success_threshold_and_failure_threshold(monkeypatch):
    results = iter([True, True, False, False, False])
    monkeypatch.setattr(probes, "run_once", lambda *a: (next(results), "refused"))
    pod = _probe_pod(successThreshold=2, failureThreshold=3)
    verdicts = []
    for t in range(1, 6):
        probes.step(pod, now=float(t))
        verdicts.append(probes.verdict(pod)[0])
    # not ready until 2 successes in a row; still ready after 1 and 2 failures; not after 3
    assert verdicts == [False, True, True, True, False]


def test_probes_wait_for_initial_delay_and_period(monkeypatch):
    calls = []
    monkeypatch.setattr(probes, "run_once", lambda *a: (calls.append(1) or True, ""))
    pod = _probe_pod(initialDelaySeconds=5, periodSeconds=10)
    pod["started"] = 1000.0
    for t in (1, 4, 6, 8, 15, 17):
        probes.step(pod, now=1000.0 + t)
    assert len(calls) == 2  # at 6 (after the delay) and 17 (a period later); not 8 or 15
