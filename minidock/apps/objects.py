"""Kubernetes documents: YAML in, validated objects out.

Two checks, in this order, for every document of a file before anything is applied:

1. the official schema of the kind (the ``kubernetes-validate`` package bundles the OpenAPI
   schemas of each release and works offline), strict: an unknown field is an error;
2. minidock's subset (``SUBSET`` below): a field Kubernetes knows but minidock does not run is
   refused with its path and the reason, never silently ignored (podman's ``kube play`` quietly
   drops replicas and readiness probes: the complaint we do not want to earn).

Then the semantic checks a Kubernetes API server makes (selector matches the template labels,
image references parse, ports in range, names are DNS labels). One error names the file, the
document and the field path, kubectl-style; apply of a file is all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

from minidock.errors import InvalidArgument

K8S_VERSION = "1.32"  # the kubectl installed beside minidock (client 1.32)

KINDS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("v1", "Pod"): "pods",
}
PLURAL = {v: k[1] for k, v in KINDS.items()}
ALIASES = {
    "deployment": "deployments",
    "deploy": "deployments",
    "deployments": "deployments",
    "service": "services",
    "svc": "services",
    "services": "services",
    "configmap": "configmaps",
    "cm": "configmaps",
    "configmaps": "configmaps",
    "secret": "secrets",
    "secrets": "secrets",
    "persistentvolumeclaim": "persistentvolumeclaims",
    "pvc": "persistentvolumeclaims",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "horizontalpodautoscaler": "horizontalpodautoscalers",
    "hpa": "horizontalpodautoscalers",
    "horizontalpodautoscalers": "horizontalpodautoscalers",
    "pod": "pods",
    "po": "pods",
    "pods": "pods",
}

# --- the subset -------------------------------------------------------------------------------------
# A dict lists the fields minidock runs; ANY accepts any keys (labels, data); a list [x] is a list
# of x; True is a leaf. A string is a field Kubernetes has that minidock refuses, with the reason.
ANY = "*any*"
META = {
    "name": True,
    "namespace": True,
    "labels": ANY,
    "annotations": ANY,
    "generateName": "names are given, not generated",
    "creationTimestamp": True,  # set by the server; podman's `kube generate` writes it (kept, not used)
}
PROBE = {
    "exec": {"command": True},
    "httpGet": {"path": True, "port": True, "scheme": True, "httpHeaders": True},
    "tcpSocket": {"port": True},
    "initialDelaySeconds": True,
    "periodSeconds": True,
    "timeoutSeconds": True,
    "successThreshold": True,
    "failureThreshold": True,
    "grpc": "gRPC probes are not implemented (exec, httpGet and tcpSocket are)",
}
KEYREF = {"name": True, "key": True, "optional": True}
CONTAINER = {
    "name": True,
    "image": True,
    "command": True,
    "args": True,
    "workingDir": True,
    "imagePullPolicy": True,
    "env": [
        {
            "name": True,
            "value": True,
            "valueFrom": {
                "configMapKeyRef": KEYREF,
                "secretKeyRef": KEYREF,
                "fieldRef": "downward API fields are not implemented",
                "resourceFieldRef": "downward API fields are not implemented",
            },
        }
    ],
    "envFrom": [
        {
            "prefix": True,
            "configMapRef": {"name": True, "optional": True},
            "secretRef": {"name": True, "optional": True},
        }
    ],
    "ports": [
        {
            "containerPort": True,
            "protocol": True,
            "name": True,
            "hostPort": True,  # published on the host like -p hostPort:containerPort (podman does too)
            "hostIP": True,
        }
    ],
    "resources": {"requests": {"cpu": True, "memory": True}, "limits": {"cpu": True, "memory": True}},
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "startupProbe": PROBE,
    "lifecycle": {
        "preStop": {"exec": {"command": True}},
        "postStart": "postStart hooks are not implemented (preStop is)",
    },
    "volumeMounts": [
        {"name": True, "mountPath": True, "readOnly": True, "subPath": "subPath mounts are not implemented"}
    ],
    "securityContext": {
        "capabilities": {"add": True, "drop": True},
        "privileged": True,
        "runAsUser": True,
        "runAsGroup": True,
        "readOnlyRootFilesystem": True,
        "seLinuxOptions": "SELinux labels are not implemented",
        "seccompProfile": "per-pod seccomp profiles are not implemented (Docker's default profile applies)",
    },
    "stdin": True,
    "tty": True,
}
ITEMS = [{"key": True, "path": True, "mode": True}]
POD_SPEC = {
    "containers": [CONTAINER],
    "initContainers": "init containers are not implemented",
    "restartPolicy": True,
    "terminationGracePeriodSeconds": True,
    "hostname": True,
    "volumes": [
        {
            "name": True,
            "configMap": {"name": True, "items": ITEMS, "defaultMode": True, "optional": True},
            "secret": {"secretName": True, "items": ITEMS, "defaultMode": True, "optional": True},
            "persistentVolumeClaim": {"claimName": True, "readOnly": True},
            "emptyDir": {"medium": True, "sizeLimit": True},
            "hostPath": "hostPath volumes are refused: use a PersistentVolumeClaim (a named volume)",
        }
    ],
    "nodeSelector": "one machine: there is no node to select",
    "affinity": "one machine: there is no node to select",
    "tolerations": "one machine: there are no taints",
    "hostNetwork": "pods always get their own network namespace",
    "serviceAccountName": "there is no API server to authenticate to",
    "automountServiceAccountToken": True,  # only false is accepted (semantic check)
    "enableServiceLinks": True,  # only false is accepted (semantic check)
}
SUBSET = {
    "Deployment": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "spec": {
            "replicas": True,
            "selector": {
                "matchLabels": ANY,
                "matchExpressions": "use matchLabels (matchExpressions are not implemented)",
            },
            "template": {"metadata": META, "spec": POD_SPEC},
            "strategy": {"type": True, "rollingUpdate": {"maxSurge": True, "maxUnavailable": True}},
            "minReadySeconds": True,
            "progressDeadlineSeconds": True,
            "paused": True,
            "revisionHistoryLimit": True,
        },
    },
    "Service": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "spec": {
            "type": True,
            "selector": ANY,
            "clusterIP": True,
            "ports": [{"name": True, "port": True, "targetPort": True, "protocol": True, "nodePort": True}],
            "sessionAffinity": "session affinity is not implemented",
            "externalTrafficPolicy": "one machine: there is no other node",
            "loadBalancerIP": "type LoadBalancer is not implemented",
        },
    },
    "ConfigMap": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "data": ANY,
        "immutable": True,
        "binaryData": "binaryData is not implemented (use data)",
    },
    "Secret": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "data": ANY,
        "stringData": ANY,
        "type": True,
        "immutable": True,
    },
    "PersistentVolumeClaim": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "spec": {
            "accessModes": True,
            "resources": {"requests": {"storage": True}},
            "storageClassName": True,
            "volumeMode": True,
        },
    },
    "HorizontalPodAutoscaler": {
        "apiVersion": True,
        "kind": True,
        "metadata": META,
        "spec": {
            "scaleTargetRef": {"apiVersion": True, "kind": True, "name": True},
            "minReplicas": True,
            "maxReplicas": True,
            "metrics": [
                {"type": True, "resource": {"name": True, "target": {"type": True, "averageUtilization": True}}}
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": True},
                "scaleUp": {"stabilizationWindowSeconds": True},
            },
        },
    },
    "Pod": {"apiVersion": True, "kind": True, "metadata": META, "spec": POD_SPEC},
}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Invalid(InvalidArgument):
    """One document failed: kubectl's shape, the source and the field path in the message."""

    exit_code = 1


def where(source: str, index: int, doc: dict | None) -> str:
    kind = (doc or {}).get("kind") or "document"
    name = ((doc or {}).get("metadata") or {}).get("name")
    return f'error validating "{source}": document {index + 1} ({kind}{" " + repr(name) if name else ""})'


# --- loading ------------------------------------------------------------------------------------------
def load_documents(text: str, source: str) -> list[dict]:
    """The documents of a YAML stream (empty ones dropped); a List's items are documents too."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise Invalid(f'error parsing "{source}": error converting YAML to JSON: yaml: {problem}{at}') from None
    out = []
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise Invalid(f"{where(source, i, None)}: a document must be a mapping (an object), got {type(d).__name__}")
        if d.get("kind") == "List" and d.get("apiVersion") == "v1":
            out += list(d.get("items") or [])
        else:
            out.append(d)
    return out


def _fmt_path(parts) -> str:
    s = ""
    for p in parts:
        s += f"[{p}]" if isinstance(p, int) else (f".{p}" if s else str(p))
    return s


def schema_check(doc: dict, source: str, index: int) -> None:
    """The official schema, strict (unknown fields are errors)."""
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if not kind or not api:
        raise Invalid(
            f"{where(source, index, doc)}: error validating data: [apiVersion not set, kind not set]".replace(
                "apiVersion not set, " if api else "\0", ""
            ).replace(", kind not set" if kind else "\0", "")
        )
    if (api, kind) not in KINDS:
        known = ", ".join(f"{a}/{k}" if "/" in a else f"{a} {k}" for a, k in KINDS)
        raise Invalid(
            f'{where(source, index, doc)}: resource mapping not found for kind "{kind}" in version '
            f'"{api}": minidock runs {known}',
            "Check kind and apiVersion (e.g. apps/v1 Deployment).",
        )
    import kubernetes_validate as kv

    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as e:
        err = e.caused_by if hasattr(e, "caused_by") else e
        path = _fmt_path(list(getattr(err, "path", []) or []))
        msg = getattr(err, "message", str(err)).splitlines()[0]
        m = re.search(r"Additional properties are not allowed \('([^']+)'", msg)
        if m:
            field = f"{path}.{m.group(1)}" if path else m.group(1)
            raise Invalid(
                f'{where(source, index, doc)}: unknown field "{field}"',
                "Check the spelling and the indentation (kubectl explain shows every field).",
            ) from None
        raise Invalid(f"{where(source, index, doc)}: {path or '<document>'}: Invalid value: {msg}") from None
    except (kv.SchemaNotFoundError, kv.InvalidSchemaError) as e:
        raise Invalid(f"{where(source, index, doc)}: no schema for {api}/{kind}: {e}") from None


def subset_check(doc: dict, source: str, index: int) -> None:
    """Fields outside what minidock runs: refused with their path and why."""

    def walk(value, allowed, path):
        if allowed is True or allowed == ANY:
            return
        if isinstance(allowed, str):
            raise Invalid(
                f'{where(source, index, doc)}: field "{_fmt_path(path)}" is not supported by minidock: {allowed}',
                "Remove the field; nothing is silently ignored.",
            )
        if isinstance(allowed, list):
            for i, item in enumerate(value or []):
                walk(item, allowed[0], path + [i])
            return
        if not isinstance(value, dict):
            return
        for key, v in value.items():
            if key not in allowed:
                where_ = _fmt_path(path + [key])
                raise Invalid(
                    f'{where(source, index, doc)}: field "{where_}" is not supported by minidock '
                    "(outside its Kubernetes subset)",
                    "Remove the field; nothing is silently ignored.",
                )
            walk(v, allowed[key], path + [key])

    doc = dict(doc)
    doc.pop("status", None)
    walk(doc, SUBSET[doc["kind"]], [])


# --- semantic checks ------------------------------------------------------------------------------------
def _fail(source, index, doc, path, msg):
    raise Invalid(f"{where(source, index, doc)}: {path}: {msg}")


def _check_port(source, index, doc, path, port, named_ok=True):
    if isinstance(port, str) and named_ok:
        if not DNS_LABEL.match(port) or len(port) > 15:
            _fail(source, index, doc, path, f'Invalid value: "{port}": must be a port name (IANA_SVC_NAME)')
        return
    if not isinstance(port, int) or not 1 <= port <= 65535:
        _fail(source, index, doc, path, f"Invalid value: {port}: must be between 1 and 65535, inclusive")


def _check_pod_spec(source, index, doc, spec: dict, base: str) -> None:
    from minidock.image.reference import parse

    names = set()
    for i, c in enumerate(spec.get("containers") or []):
        p = f"{base}.containers[{i}]"
        if not DNS_LABEL.match(c.get("name", "")):
            _fail(source, index, doc, f"{p}.name", f'Invalid value: "{c.get("name")}": a lowercase RFC 1123 label')
        if c["name"] in names:
            _fail(source, index, doc, f"{p}.name", f'Duplicate value: "{c["name"]}"')
        names.add(c["name"])
        if not c.get("image"):
            _fail(source, index, doc, f"{p}.image", "Required value")
        try:
            parse(c["image"])
        except Exception as e:  # noqa: BLE001 - the reference parser's message is the reason
            _fail(source, index, doc, f"{p}.image", f'Invalid value: "{c["image"]}": {getattr(e, "message", e)}')
        for j, port in enumerate(c.get("ports") or []):
            _check_port(source, index, doc, f"{p}.ports[{j}].containerPort", port.get("containerPort"), named_ok=False)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            pr = c.get(probe)
            if pr is None:
                continue
            handlers = [h for h in ("exec", "httpGet", "tcpSocket") if h in pr]
            if len(handlers) != 1:
                _fail(source, index, doc, f"{p}.{probe}", "Required value: must specify exactly one handler type")
            port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
            if port is not None:
                _check_port(source, index, doc, f"{p}.{probe}.{handlers[0]}.port", port)
        for res in ("requests", "limits"):
            for key, val in ((c.get("resources") or {}).get(res) or {}).items():
                try:
                    (cpu_millis if key == "cpu" else memory_bytes)(val)
                except ValueError:
                    _fail(
                        source,
                        index,
                        doc,
                        f"{p}.resources.{res}.{key}",
                        f'Invalid value: "{val}": quantities must match the regular expression '
                        r"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
    vols = {v.get("name") for v in spec.get("volumes") or []}
    for i, c in enumerate(spec.get("containers") or []):
        for j, m in enumerate(c.get("volumeMounts") or []):
            if m.get("name") not in vols:
                _fail(
                    source,
                    index,
                    doc,
                    f"{base}.containers[{i}].volumeMounts[{j}].name",
                    f'Not found: "{m.get("name")}"',
                )
    if spec.get("automountServiceAccountToken"):
        _fail(source, index, doc, f"{base}.automountServiceAccountToken",
              "Unsupported value: true: there is no API server, so no service account token (use false)")
    if spec.get("enableServiceLinks"):
        _fail(source, index, doc, f"{base}.enableServiceLinks",
              "Unsupported value: true: Service environment variables are not injected; use the "
              "Service's name (it resolves in every pod), and false here")
    rp = spec.get("restartPolicy")
    if rp and rp not in ("Always", "OnFailure", "Never"):
        _fail(source, index, doc, f"{base}.restartPolicy", f'Unsupported value: "{rp}"')


def semantic_check(doc: dict, source: str, index: int) -> None:
    kind = doc["kind"]
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not name:
        _fail(source, index, doc, "metadata.name", "Required value: name or generateName is required")
    pattern = DNS_LABEL if kind in ("Service", "Deployment") else DNS_SUBDOMAIN
    if not pattern.match(name) or len(name) > (63 if pattern is DNS_LABEL else 253):
        _fail(
            source,
            index,
            doc,
            "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 '
            f"{'label' if pattern is DNS_LABEL else 'subdomain'} must consist of lower case alphanumeric "
            "characters or '-'",
        )
    ns = meta.get("namespace")
    if ns is not None and not DNS_LABEL.match(ns):
        _fail(source, index, doc, "metadata.namespace", f'Invalid value: "{ns}"')
    spec = doc.get("spec") or {}
    if kind == "Deployment":
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        if not sel:
            _fail(source, index, doc, "spec.selector", "Required value: matchLabels")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in sel.items()):
            _fail(
                source,
                index,
                doc,
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
            )
        if spec.get("replicas") is not None and spec["replicas"] < 0:
            _fail(source, index, doc, "spec.replicas", "Invalid value: must be greater than or equal to 0")
        st = spec.get("strategy") or {}
        if st.get("type") not in (None, "RollingUpdate", "Recreate"):
            _fail(source, index, doc, "spec.strategy.type", f'Unsupported value: "{st.get("type")}"')
        if st.get("type") == "Recreate" and st.get("rollingUpdate"):
            _fail(
                source,
                index,
                doc,
                "spec.strategy.rollingUpdate",
                "Forbidden: may not be specified when strategy `type` is 'Recreate'",
            )
        ru = st.get("rollingUpdate") or {}
        for f in ("maxSurge", "maxUnavailable"):
            if f in ru and not re.fullmatch(r"\d+%?", str(ru[f])):
                _fail(
                    source,
                    index,
                    doc,
                    f"spec.strategy.rollingUpdate.{f}",
                    f"Invalid value: \"{ru[f]}\": must be an integer or percentage (e.g '5%')",
                )
        if str(ru.get("maxSurge", "1")) in ("0", "0%") and str(ru.get("maxUnavailable", "1")) in ("0", "0%"):
            _fail(
                source,
                index,
                doc,
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: 0: may not be 0 when `maxSurge` is 0",
            )
        _check_pod_spec(source, index, doc, (spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
        rp = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if rp not in (None, "Always"):
            _fail(
                source,
                index,
                doc,
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{rp}": supported values: "Always"',
            )
    elif kind == "Pod":
        _check_pod_spec(source, index, doc, spec, "spec")
    elif kind == "Service":
        t = spec.get("type", "ClusterIP")
        if t not in ("ClusterIP", "NodePort"):
            _fail(source, index, doc, "spec.type", f'Unsupported value: "{t}": minidock runs "ClusterIP", "NodePort"')
        if not spec.get("ports"):
            _fail(source, index, doc, "spec.ports", "Required value")
        for i, p in enumerate(spec["ports"]):
            _check_port(source, index, doc, f"spec.ports[{i}].port", p.get("port"), named_ok=False)
            if "targetPort" in p:
                _check_port(source, index, doc, f"spec.ports[{i}].targetPort", p["targetPort"])
            if "nodePort" in p:
                if t != "NodePort":
                    _fail(
                        source,
                        index,
                        doc,
                        f"spec.ports[{i}].nodePort",
                        "Forbidden: may not be used when `type` is 'ClusterIP'",
                    )
                if not 30000 <= p["nodePort"] <= 32767:
                    _fail(
                        source,
                        index,
                        doc,
                        f"spec.ports[{i}].nodePort",
                        f"Invalid value: {p['nodePort']}: provided port is not in the valid range. "
                        "The range of valid ports is 30000-32767",
                    )
        if spec.get("clusterIP") not in (None, "", "None") and not re.fullmatch(r"10\.96\.\d+\.\d+", spec["clusterIP"]):
            _fail(
                source,
                index,
                doc,
                "spec.clusterIP",
                f'Invalid value: "{spec["clusterIP"]}": provided IP is not '
                f"in the valid range. The range of valid IPs is {SERVICE_CIDR}",
            )
        if spec.get("clusterIP") == "None":
            _fail(source, index, doc, "spec.clusterIP", "headless Services are not implemented by minidock")
    elif kind == "HorizontalPodAutoscaler":
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment":
            _fail(
                source,
                index,
                doc,
                "spec.scaleTargetRef.kind",
                f'Unsupported value: "{ref.get("kind")}": minidock scales "Deployment"',
            )
        for i, m in enumerate(spec.get("metrics") or []):
            res = m.get("resource") or {}
            if (
                m.get("type") != "Resource"
                or res.get("name") != "cpu"
                or (res.get("target") or {}).get("type") != "Utilization"
            ):
                _fail(
                    source,
                    index,
                    doc,
                    f"spec.metrics[{i}]",
                    "Unsupported value: minidock scales on type Resource, name cpu, target type Utilization",
                )
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 1):
            _fail(source, index, doc, "spec.minReplicas", "Invalid value: must be less than or equal to maxReplicas")
    elif kind == "Secret":
        import base64
        import binascii

        for k_, v in (doc.get("data") or {}).items():
            try:
                base64.b64decode(str(v), validate=True)
            except (binascii.Error, ValueError):
                _fail(source, index, doc, f"data[{k_}]", "Invalid value: illegal base64 data")


SERVICE_CIDR = "10.96.0.0/16"


def validate(doc: dict, source: str, index: int) -> dict:
    schema_check(doc, source, index)
    subset_check(doc, source, index)
    semantic_check(doc, source, index)
    doc = json.loads(json.dumps(doc))
    doc.setdefault("metadata", {}).setdefault("namespace", "default")
    doc.pop("status", None)
    return doc


def load_and_validate(text: str, source: str) -> list[dict]:
    docs = [validate(d, source, i) for i, d in enumerate(load_documents(text, source))]
    seen = set()
    for i, d in enumerate(docs):
        key = (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"])
        if key in seen:
            raise Invalid(
                f"{where(source, i, d)}: metadata.name: Duplicate value: {d['kind']} "
                f'"{d["metadata"]["name"]}" appears twice in the file'
            )
        seen.add(key)
    return docs


# --- defaults and quantities ------------------------------------------------------------------------
def cpu_millis(q) -> int:
    s = str(q)
    if s.endswith("m"):
        return int(float(s[:-1]))
    try:
        return int(round(float(s) * 1000))
    except ValueError:
        raise ValueError(s) from None


_MEM = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "m": 0.001,
}


def memory_bytes(q) -> int:
    s = str(q)
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|k|K|M|G|T|m)?", s)
    if not m:
        raise ValueError(s)
    return int(float(m.group(1)) * _MEM.get(m.group(2) or "", 1))


def int_or_percent(value, total: int, round_up: bool) -> int:
    s = str(value)
    if s.endswith("%"):
        v = int(s[:-1]) * total / 100
        return math.ceil(v) if round_up else math.floor(v)
    return int(s)


def template_hash(template: dict) -> str:
    """pod-template-hash: a stable short hash of the pod template (like the ReplicaSet's)."""
    h = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(h[:16], 16)
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def deployment_defaults(spec: dict) -> dict:
    st = spec.get("strategy") or {}
    t = st.get("type") or "RollingUpdate"
    ru = st.get("rollingUpdate") or {}
    return {
        "replicas": 1 if spec.get("replicas") is None else spec["replicas"],
        "strategy": t,
        "maxSurge": ru.get("maxSurge", "25%"),
        "maxUnavailable": ru.get("maxUnavailable", "25%"),
        "minReadySeconds": spec.get("minReadySeconds") or 0,
        "progressDeadlineSeconds": spec.get("progressDeadlineSeconds") or 600,
        "paused": bool(spec.get("paused")),
        "revisionHistoryLimit": 10 if spec.get("revisionHistoryLimit") is None else spec["revisionHistoryLimit"],
    }


def probe_defaults(p: dict | None) -> dict | None:
    if not p:
        return None
    return {
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    } | p
