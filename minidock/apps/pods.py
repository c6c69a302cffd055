"""A pod = ordinary minidock containers sharing one network namespace (and so one IP).

The first container of a pod owns the namespace (on the apps network ``APPS_NETWORK``, a user
network: names resolve through kept hosts files); the others join it with ``container:<first>``,
as Kubernetes' pause container does. Each container carries the pod's labels as container labels,
plus pod-template-hash, the revision and the io.kubernetes.* labels, so `minidock ps --filter
label=app=web`, `logs`, `exec`, `stats` and `inspect` work on them. The first container is named
like the pod (``web-<hash>-<5 chars>``), the others ``<pod>-<container>``.

ConfigMaps and Secrets become environment variables and read-only files (written under
``apps/files/<ns>/<pod>/``, bind-mounted); a PersistentVolumeClaim is the named volume of the
same name; emptyDir an anonymous volume.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import shutil
import signal
import time

from minidock.apps import objects, store
from minidock.errors import MinidockError, NotFound

APPS_NETWORK = "minidock-apps"
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class _PullError(MinidockError):
    """The image could not be found or pulled (the kubelet's ErrImagePull)."""


def ensure_network() -> None:
    from minidock import network
    from minidock.network import store as netstore

    if netstore.load(APPS_NETWORK) is None:
        with contextlib.suppress(MinidockError):
            network.create(APPS_NETWORK, labels={"minidock.apps": "true"})


def new_name(prefix: str) -> str:
    taken = {p["name"] for p in store.pods()}
    while True:
        name = f"{prefix}-{''.join(random.choices(SUFFIX_ALPHABET, k=5))}"
        if name not in taken:
            return name


def _data(kind: str, ns: str, name: str, optional: bool = False) -> dict[str, str]:
    plural = "configmaps" if kind == "ConfigMap" else "secrets"
    obj = store.get(plural, ns, name)
    if obj is None:
        if optional:
            return {}
        raise NotFound(f'{kind.lower()} "{name}" not found')
    data = dict(obj.get("data") or {})
    if kind == "Secret":
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        data.update(obj.get("stringData") or {})
    return {k: str(v) for k, v in data.items()}


def container_env(ns: str, c: dict) -> list[str]:
    env: list[str] = []
    for src in c.get("envFrom") or []:
        if "configMapRef" in src:
            d = _data("ConfigMap", ns, src["configMapRef"]["name"], src["configMapRef"].get("optional", False))
        else:
            d = _data("Secret", ns, src["secretRef"]["name"], src["secretRef"].get("optional", False))
        env += [f"{src.get('prefix', '')}{k}={v}" for k, v in d.items()]
    for e in c.get("env") or []:
        if "value" in e or "valueFrom" not in e:
            env.append(f"{e['name']}={e.get('value', '')}")
            continue
        vf = e["valueFrom"]
        ref, kind = (vf["configMapKeyRef"], "ConfigMap") if "configMapKeyRef" in vf else (vf["secretKeyRef"], "Secret")
        d = _data(kind, ns, ref["name"], ref.get("optional", False))
        if ref["key"] not in d:
            if ref.get("optional"):
                continue
            raise NotFound(f"couldn't find key {ref['key']} in {kind} {ns}/{ref['name']}")
        env.append(f"{e['name']}={d[ref['key']]}")
    return env


def files_dir(ns: str, pod: str):
    return store.root() / "files" / ns / pod


def _volume_args(ns: str, pod: str, spec: dict, c: dict) -> list[str]:
    vols = {v["name"]: v for v in spec.get("volumes") or []}
    out = []
    for m in c.get("volumeMounts") or []:
        v = vols[m["name"]]
        if "configMap" in v or "secret" in v:
            kind = "ConfigMap" if "configMap" in v else "Secret"
            src = v.get("configMap") or v.get("secret")
            data = _data(kind, ns, src.get("name") or src.get("secretName"), src.get("optional", False))
            d = files_dir(ns, pod) / m["name"]
            d.mkdir(parents=True, exist_ok=True)
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] not in data:
                    raise NotFound(
                        f"couldn't find key {it['key']} in {kind} {ns}/{src.get('name') or src.get('secretName')}"
                    )
                p = d / it["path"]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(data[it["key"]])
                os.chmod(p, it.get("mode") or src.get("defaultMode") or 0o644)
            out.append(f"{d}:{m['mountPath']}:ro")
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            if store.get("persistentvolumeclaims", ns, claim) is None:
                raise NotFound(f'persistentvolumeclaim "{claim}" not found')
            read_only = m.get("readOnly") or v["persistentVolumeClaim"].get("readOnly")
            out.append(f"{claim}:{m['mountPath']}{':ro' if read_only else ''}")
        else:  # emptyDir: an anonymous volume, gone with the pod
            out.append(m["mountPath"])
    return out


def _resources(c: dict) -> tuple[dict, dict]:
    lim = (c.get("resources") or {}).get("limits") or {}
    flags = {}
    if "cpu" in lim:
        flags["cpus"] = str(objects.cpu_millis(lim["cpu"]) / 1000)
    if "memory" in lim:
        flags["memory"] = str(objects.memory_bytes(lim["memory"]))
    if not flags:
        return {}, {}
    from minidock.engine.resources import host_config_fields, resources_from_flags

    return resources_from_flags(**flags), host_config_fields(**flags)


def create(ns: str, name: str, template: dict, owner: str, extra_labels: dict, *, hostname: str | None = None) -> dict:
    """Create and start the pod's containers; its record is written first (phase Pending)."""
    from minidock.engine import lifecycle
    from minidock.engine.create import RunOptions, create_container, resolve_image

    spec = template.get("spec") or {}
    labels = dict((template.get("metadata") or {}).get("labels") or {}) | extra_labels
    pod = {
        "name": name,
        "namespace": ns,
        "owner": owner,
        "labels": labels,
        "uid": os.urandom(16).hex(),
        "created": time.time(),
        "creationTimestamp": store.now(),
        "phase": "Pending",
        "ready": False,
        "containers": [],
        "ip": "",
        "restarts": 0,
        "reason": "",
        "message": "",
        "hash": extra_labels.get("pod-template-hash", ""),
        "revision": extra_labels.get("minidock.apps/revision", ""),
        "spec": spec,
    }
    store.put_pod(pod)
    ensure_network()
    try:
        first = None
        for i, c in enumerate(spec.get("containers") or []):
            cname = name if i == 0 else f"{name}-{c['name']}"
            clabels = labels | {
                "io.kubernetes.pod.name": name,
                "io.kubernetes.pod.namespace": ns,
                "io.kubernetes.container.name": c["name"],
                "minidock.apps/owner": owner,
            }
            resources, hc_fields = _resources(c)
            sc = c.get("securityContext") or {}
            user = None
            if sc.get("runAsUser") is not None:
                user = str(sc["runAsUser"]) + (f":{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else "")
            publish = []
            if first is None:  # the pod's ports on the host: the network owner publishes them all
                publish = [f"{p['hostIP'] + ':' if p.get('hostIP') else ''}{p['hostPort']}:{p['containerPort']}"
                           f"/{p.get('protocol', 'TCP').lower()}"
                           for cc in spec.get("containers") or [] for p in cc.get("ports") or [] if p.get("hostPort")]
            grace = spec.get("terminationGracePeriodSeconds")
            opts = RunOptions(
                image=c["image"],
                name=cname,
                command=list(c.get("args") or [])
                if c.get("command") is None
                else list(c["command"]) + list(c.get("args") or []),
                entrypoint=None if c.get("command") is None else "",
                env=container_env(ns, c),
                workdir=c.get("workingDir"),
                hostname=(hostname or name) if i == 0 else None,
                network=APPS_NETWORK if first is None else f"container:{first}",
                ipc="shareable" if first is None else f"container:{first}",  # one IPC namespace per pod
                labels=[f"{k}={v}" for k, v in clabels.items()],
                volumes=_volume_args(ns, name, spec, c),
                init=True,  # PID 1 gets SIGTERM from the controller (a bare httpd as PID 1 would ignore it)
                stop_timeout=30 if grace is None else grace,
                pull_policy={"Always": "always", "Never": "never"}.get(c.get("imagePullPolicy", ""), "missing"),
                resources=resources,
                resource_flags=hc_fields,
                publish=publish,
                cap_add=[x.upper().removeprefix("CAP_") for x in (sc.get("capabilities") or {}).get("add") or []],
                cap_drop=[x.upper().removeprefix("CAP_") for x in (sc.get("capabilities") or {}).get("drop") or []],
                privileged=bool(sc.get("privileged")),
                read_only=bool(sc.get("readOnlyRootFilesystem")),
                user=user,
                tty=bool(c.get("tty")),
                interactive=bool(c.get("stdin")),
            )
            if c.get("args") and c.get("command") is None:
                # args without command: the image's ENTRYPOINT with these arguments (Kubernetes' rule)
                opts.command = list(c["args"])
            try:
                resolve_image(opts.image, opts.pull_policy)
            except MinidockError as e:
                raise _PullError(e.message) from None
            rec = create_container(opts)
            pod["containers"].append({"name": c["name"], "id": rec["Id"]})
            store.put_pod(pod)
            # one monitor per pod (containerd's shim per sandbox): the first container's serves
            # the others too; `join` falls back to a monitor of their own if it is gone
            lifecycle.run_detached(rec, interactive=bool(c.get("stdin")), group=first is None,
                                   join=first)
            if first is None:
                first = rec["Id"]
        pod["phase"] = "Running"
        pod["started"] = time.time()
        pod["ip"] = ip_of(pod)
    except MinidockError as e:
        pod["phase"] = "Failed"
        pod["reason"] = "ErrImagePull" if isinstance(e, _PullError) else "CreateContainerError"
        pod["message"] = e.message
    store.put_pod(pod)
    return pod


def ip_of(pod: dict) -> str:
    from minidock.state import containers

    if not pod["containers"]:
        return ""
    try:
        rec = containers.load(pod["containers"][0]["id"])
    except (NotFound, OSError, ValueError):
        return ""
    nets = (rec.get("NetworkSettings") or {}).get("Networks") or {}
    return (nets.get(APPS_NETWORK) or {}).get("IPAddress", "")


def container_states(pod: dict) -> list[dict]:
    """Each container's State (refreshed: a dead supervisor is noticed), or {} if it is gone."""
    from minidock.engine import lifecycle

    out = []
    for c in pod["containers"]:
        try:
            out.append(lifecycle.refresh(c["id"])["State"])
        except (NotFound, OSError, ValueError):
            out.append({})
    return out


def all_running(pod: dict) -> bool:
    states = container_states(pod)
    return bool(states) and all(s.get("Running") for s in states)


def signal_pod(pod: dict, sig: int) -> None:
    from minidock.state import containers

    for c in reversed(pod["containers"]):
        try:
            st = containers.load_state(c["id"])
        except (OSError, ValueError, NotFound):
            continue
        if st.get("Running") and st.get("Pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(st["Pid"], sig)


def run_pre_stop(pod: dict) -> None:
    """Each container's preStop exec hook (bounded by the grace period, run synchronously)."""
    import subprocess
    import sys

    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    for c, cspec in zip(pod["containers"], pod["spec"].get("containers") or []):
        cmd = (((cspec.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
        if cmd:
            with contextlib.suppress(Exception):
                subprocess.run(
                    [sys.executable, "-m", "minidock", "exec", c["id"], *cmd],
                    capture_output=True,
                    timeout=max(1, grace),
                )


def remove(pod: dict) -> None:
    """Remove the pod's containers (SIGKILL what still runs), its files and its record."""
    from minidock.engine import lifecycle

    for c in reversed(pod["containers"]):
        with contextlib.suppress(NotFound, MinidockError, OSError):
            lifecycle.remove(c["id"], force=True, volumes=True)
    shutil.rmtree(files_dir(pod["namespace"], pod["name"]), ignore_errors=True)
    store.remove_pod(pod["namespace"], pod["name"])


def terminate_now(pod: dict) -> None:
    signal_pod(pod, signal.SIGKILL)
    remove(pod)
