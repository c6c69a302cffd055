"""Kubernetes documents: the official schema, minidock's subset, kubectl-style errors (no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidock.apps import objects

pytest.importorskip("kubernetes_validate")
pytest.importorskip("yaml")

WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def refused(text: str) -> str:
    with pytest.raises(objects.Invalid) as e:
        objects.load_and_validate(text, "web.yaml")
    assert e.value.exit_code == 1
    return e.value.message


def test_the_lecture_file_is_accepted_with_defaults():
    docs = objects.load_and_validate(WEB, "web.yaml")
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert docs[0]["metadata"]["namespace"] == "default"
    cfg = objects.deployment_defaults(docs[0]["spec"])
    assert cfg["strategy"] == "RollingUpdate" and cfg["maxSurge"] == "25%" and cfg["maxUnavailable"] == "25%"
    assert cfg["progressDeadlineSeconds"] == 600 and cfg["revisionHistoryLimit"] == 10


def test_unknown_field_is_refused_with_its_path():
    msg = refused(WEB.replace("        image: busybox\n", "        image: busybox\n        imagePolicy: x\n"))
    assert 'unknown field "spec.template.spec.containers[0].imagePolicy"' in msg
    assert 'web.yaml' in msg and "document 1" in msg and "Deployment" in msg


def test_replicas_as_a_string_is_refused():
    msg = refused(WEB.replace("replicas: 3", 'replicas: "3"'))
    assert "spec.replicas" in msg and "integer" in msg


def test_field_outside_the_subset_is_refused_with_a_reason():
    msg = refused(WEB.replace("      containers:\n", "      nodeSelector: {disk: ssd}\n      containers:\n"))
    assert '"spec.template.spec.nodeSelector" is not supported by minidock' in msg and "node" in msg


def test_bad_image_port_out_of_range_and_selector_mismatch():
    assert "spec.template.spec.containers[0].image" in refused(WEB.replace("image: busybox", "image: 'Bad Image'"))
    assert "containerPort" in refused(WEB.replace("containerPort: 8080", "containerPort: 70000"))
    assert "spec.ports[0].port" in refused(WEB.replace("port: 80,", "port: 0,"))
    msg = refused(WEB.replace("metadata: {labels: {app: web}}", "metadata: {labels: {app: other}}"))
    assert "selector" in msg and "spec.template.metadata.labels" in msg


def test_second_document_is_named():
    msg = refused(WEB.replace("type: NodePort", "type: LoadBalancer"))
    assert "document 2 (Service" in msg and "spec.type" in msg


def test_malformed_yaml_and_unknown_kind():
    assert "error parsing" in refused("a: [")
    msg = refused("apiVersion: v1\nkind: Gadget\nmetadata: {name: x}\n")
    assert 'kind "Gadget"' in msg
    assert "a mapping" in refused("- 1\n- 2\n")


def test_nodeport_range_and_secret_base64():
    assert "30000-32767" in refused(WEB.replace("targetPort: 8080}", "targetPort: 8080, nodePort: 80}"))
    bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n"
    assert "base64" in refused(bad)


def test_quantities_and_percentages():
    assert objects.cpu_millis("250m") == 250 and objects.cpu_millis("1.5") == 1500 and objects.cpu_millis(2) == 2000
    assert objects.memory_bytes("64Mi") == 64 << 20 and objects.memory_bytes("1G") == 10**9
    assert objects.int_or_percent("25%", 3, True) == 1 and objects.int_or_percent("25%", 3, False) == 0
    assert objects.int_or_percent(2, 10, True) == 2


def test_template_hash_is_stable_and_changes_with_the_template():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "a"}]}}
    h = objects.template_hash(t)
    assert h == objects.template_hash(dict(t)) and len(h) == 10
    t2 = {**t, "spec": {"containers": [{"name": "w", "image": "b"}]}}
    assert objects.template_hash(t2) != h


PODMAN = Path(__file__).with_name("podman-4.3-kube-generate.yaml")


def test_podmans_own_kube_generate_output_is_accepted():
    docs = objects.load_and_validate(PODMAN.read_text(), str(PODMAN))
    c = docs[0]["spec"]["containers"][0]
    assert docs[0]["kind"] == "Pod" and c["ports"][0]["hostPort"] == 8080
    assert c["securityContext"]["capabilities"]["drop"] == ["CAP_MKNOD", "CAP_NET_RAW", "CAP_AUDIT_WRITE"]


def test_service_links_and_token_mounts_are_refused_when_asked_for():
    text = PODMAN.read_text().replace("enableServiceLinks: false", "enableServiceLinks: true")
    assert "spec.enableServiceLinks" in refused(text)
    text = PODMAN.read_text().replace("automountServiceAccountToken: false", "automountServiceAccountToken: true")
    assert "spec.automountServiceAccountToken" in refused(text)
