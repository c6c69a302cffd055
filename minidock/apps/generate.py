"""`kube generate`: Kubernetes YAML from containers (or pods), checked against the official schema.

A container becomes a Pod with one container (image, command, env, working dir, ports, labels);
several references become one Pod with several containers (podman's behaviour); a pod run by
minidock (apply) gives back its spec. ``--service`` adds a NodePort Service for the published
ports. The output is validated by the same strict check `apply` uses before it is printed.
"""

from __future__ import annotations

import re

from minidock.apps import objects, store
from minidock.errors import MinidockError


def _k8s_name(name: str) -> str:
    n = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    return n[:63] or "pod"


def _container(rec: dict) -> tuple[dict, list[tuple[int, int]]]:
    cfg = rec["Config"]
    c = {"name": _k8s_name(rec["Name"].lstrip("/")), "image": cfg.get("Image") or rec.get("Image")}
    if cfg.get("Entrypoint"):
        c["command"] = list(cfg["Entrypoint"])
    if cfg.get("Cmd"):
        c["args"] = list(cfg["Cmd"])
    image_env = set()
    env = [e for e in cfg.get("Env") or [] if e not in image_env and not e.startswith(("PATH=", "HOSTNAME=", "TERM="))]
    if env:
        c["env"] = [{"name": e.partition("=")[0], "value": e.partition("=")[2]} for e in env]
    if cfg.get("WorkingDir"):
        c["workingDir"] = cfg["WorkingDir"]
    published = []
    ports = []
    for p in cfg.get("ExposedPorts") or {}:
        num, _, proto = p.partition("/")
        ports.append({"containerPort": int(num), "protocol": (proto or "tcp").upper()})
    for p, binds in (rec["HostConfig"].get("PortBindings") or {}).items():
        num, _, proto = p.partition("/")
        if not any(x["containerPort"] == int(num) for x in ports):
            ports.append({"containerPort": int(num), "protocol": (proto or "tcp").upper()})
        for b in binds or []:
            if b.get("HostPort"):
                published.append((int(num), int(b["HostPort"])))
    if ports:
        c["ports"] = ports
    if cfg.get("Tty"):
        c["tty"] = True
    if cfg.get("OpenStdin"):
        c["stdin"] = True
    return c, published


def generate(refs: list[str], service: bool = False) -> str:
    import yaml

    from minidock.state import containers

    docs = []
    for ref in refs:
        pod = next((p for p in store.pods() if p["name"] == ref), None)
        if pod is not None:
            spec = pod["spec"]
            labels = {k: v for k, v in (pod.get("labels") or {}).items() if "/" not in k}
            docs.append(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod["name"], "labels": labels}, "spec": spec}
            )
    if docs and len(docs) != len(refs):
        raise MinidockError("kube generate: give either pods or containers, not both", exit_code=125)
    published = []
    if not docs:
        cs, labels = [], {}
        for ref in refs:
            rec = containers.full(containers.resolve(ref))
            c, pub = _container(rec)
            cs.append(c)
            published += pub
            labels.update(
                {
                    k: v
                    for k, v in (rec["Config"].get("Labels") or {}).items()
                    if objects.DNS_LABEL.match(k) and re.fullmatch(r"[A-Za-z0-9._-]{0,63}", str(v))
                }
            )
        name = cs[0]["name"] + ("-pod" if len(cs) > 1 else "")
        labels["app"] = name
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": labels},
                "spec": {"containers": cs, "restartPolicy": "Always"},
            }
        )
    if service and published:
        pod = docs[0]
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": pod["metadata"]["name"]},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": pod["metadata"]["labels"].get("app", "")},
                    "ports": [
                        {"name": f"{c}-tcp", "port": c, "targetPort": c, "protocol": "TCP"} for c, _ in published
                    ],
                },
            }
        )
    for i, d in enumerate(docs):
        objects.schema_check(d, "kube generate", i)
        objects.subset_check(d, "kube generate", i)
    header = (
        f"# Generation of Kubernetes YAML by minidock (validated against the Kubernetes {objects.K8S_VERSION} schema)\n"
    )
    return header + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
