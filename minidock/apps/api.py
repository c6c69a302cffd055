"""What the kubectl-shaped verbs do, without printing: apply, delete, scale, set image, rollout.

The CLI (minidock/cli/apps.py) formats; this module changes objects on disk and wakes
controllers. Apply of a file is all or nothing: every document is validated (and every Service
allocated) before the first one is written.
"""

from __future__ import annotations

import json
import time

from minidock.apps import controller, objects, pods, services, store
from minidock.errors import MinidockError, NotFound

GROUP = {
    "deployments": "deployment.apps",
    "services": "service",
    "configmaps": "configmap",
    "secrets": "secret",
    "persistentvolumeclaims": "persistentvolumeclaim",
    "horizontalpodautoscalers": "horizontalpodautoscaler.autoscaling",
    "pods": "pod",
}


def plural_of(kind: str) -> str:
    try:
        return objects.ALIASES[kind.lower().partition(".")[0]]  # deployment.apps -> deployments
    except KeyError:
        raise MinidockError(f'the server doesn\'t have a resource type "{kind}"', exit_code=1) from None


def split_ref(ref: str, kind: str | None = None) -> tuple[str, str]:
    if "/" in ref:
        k, _, name = ref.partition("/")
        return plural_of(k), name
    if kind is None:
        raise MinidockError(f"error: you must specify the type of resource (e.g. deployment/{ref})", exit_code=1)
    return plural_of(kind), ref


def not_found(plural: str, name: str) -> NotFound:
    group = GROUP[plural].partition(".")[2]
    return NotFound(f'Error from server (NotFound): {plural}{"." + group if group else ""} "{name}" not found',
                    exit_code=1)


def require(plural: str, ns: str, name: str) -> dict:
    obj = store.get(plural, ns, name)
    if obj is None:
        raise not_found(plural, name)
    return obj


def _strip(obj: dict) -> dict:
    o = json.loads(json.dumps(obj))
    for k in ("uid", "creationTimestamp", "generation", "resourceVersion"):
        o.get("metadata", {}).pop(k, None)
    return o


def apply_documents(docs: list[dict]) -> list[str]:
    """Write the validated documents (all or nothing); returns kubectl's lines."""
    lines, writes = [], []
    with store.lock():
        for d in docs:
            plural = objects.KINDS[(d["apiVersion"], d["kind"])]
            m = d["metadata"]
            old = store.get(plural, m["namespace"], m["name"])
            if plural == "services":
                services.allocate(d, old)
                for other_plural, other in writes:  # allocations within this file must not collide
                    if other_plural == "services" and other["spec"]["clusterIP"] == d["spec"]["clusterIP"]:
                        d["spec"].pop("clusterIP")
                        services.allocate(d, None)
            if plural == "pods" and old is not None and _strip(old)["spec"] != d["spec"]:
                raise MinidockError(
                    f'The Pod "{m["name"]}" is invalid: spec: Forbidden: pod updates may not change '
                    "fields other than the image",
                    exit_code=1,
                )
            if old is not None:
                same = _strip(old) == _strip(d) or (plural == "services" and _strip(old) == _strip(d))
                m["uid"], m["creationTimestamp"] = old["metadata"]["uid"], old["metadata"]["creationTimestamp"]
                gen = old["metadata"].get("generation", 1)
                m["generation"] = gen if same or old.get("spec") == d.get("spec") else gen + 1
                verb = "unchanged" if same else "configured"
            else:
                import os

                m["uid"], m["creationTimestamp"], m["generation"] = os.urandom(16).hex(), store.now(), 1
                verb = "created"
            writes.append((plural, d))
            lines.append(f"{GROUP[plural]}/{m['name']} {verb}")
        for plural, d in writes:  # validated and allocated: now write them all
            store.put(d, plural)
            if plural == "persistentvolumeclaims":
                _ensure_volume(d["metadata"]["name"])
    for plural, d in writes:
        if plural == "pods" and not store.pods(d["metadata"]["namespace"], f"pods/{d['metadata']['name']}"):
            _start_pod(d)
    if any(p == "services" for p, _ in writes):
        services.sync()
    for plural, d in writes:
        if plural == "deployments":
            controller.ensure(d["metadata"]["namespace"], d["metadata"]["name"])
        elif plural == "horizontalpodautoscalers":
            target = d["spec"]["scaleTargetRef"]["name"]
            if store.get("deployments", d["metadata"]["namespace"], target):
                controller.ensure(d["metadata"]["namespace"], target)
    return lines


def _ensure_volume(name: str) -> None:
    from minidock import volumes

    try:
        volumes.inspect(name)
    except NotFound:
        volumes.create(name, labels={"minidock.apps/pvc": name})


def _start_pod(d: dict) -> None:
    m = d["metadata"]
    pod = pods.create(m["namespace"], m["name"], {"metadata": m, "spec": d["spec"]}, f"pods/{m['name']}", {})
    if pod["phase"] == "Running":
        pod["ready"] = True  # a bare pod: ready once running (its probes need a controller)
        pod["readySince"] = time.time()
        store.put_pod(pod)
    store.event(
        m["namespace"],
        "Pod",
        m["name"],
        "Started" if pod["phase"] == "Running" else "Failed",
        pod.get("message") or f"Started pod {m['name']}",
        "Normal" if pod["phase"] == "Running" else "Warning",
    )


def delete(plural: str, ns: str, name: str, wait: bool = True) -> str:
    with store.lock():
        require(plural, ns, name)
        store.remove(plural, ns, name)
    if plural == "deployments":
        controller.ensure(ns, name)  # it retires the pods and exits
        if wait:
            controller.wait_gone(ns, name)
    elif plural == "pods":
        for p in store.pods(ns, f"pods/{name}"):
            p["ready"] = False
            store.put_pod(p)
            services.sync()
            pods.terminate_now(p)
    elif plural == "services":
        services.sync()
    elif plural == "horizontalpodautoscalers":
        store.remove_status(plural, ns, name)
    return f'{GROUP[plural]} "{name}" deleted'


def update_deployment(ns: str, name: str, change) -> dict:
    with store.lock():
        dep = require("deployments", ns, name)
        before = json.dumps(dep["spec"], sort_keys=True)
        change(dep)
        if json.dumps(dep["spec"], sort_keys=True) != before:
            dep["metadata"]["generation"] = dep["metadata"].get("generation", 1) + 1
        store.put(dep, "deployments")
    controller.ensure(ns, name)
    return dep


def set_image(ns: str, name: str, pairs: dict[str, str]) -> None:
    def change(dep):
        cs = dep["spec"]["template"]["spec"]["containers"]
        for cname, image in pairs.items():
            hit = [c for c in cs if c["name"] == cname or cname == "*"]
            if not hit:
                raise MinidockError(f'error: unable to find container named "{cname}"', exit_code=1)
            for c in hit:
                from minidock.image.reference import parse

                try:
                    parse(image)
                except MinidockError as e:
                    raise MinidockError(f'error: invalid image "{image}": {e.message}', exit_code=1) from None
                c["image"] = image

    update_deployment(ns, name, change)


def undo(ns: str, name: str, to_revision: int | None) -> None:
    st = store.get_status("deployments", ns, name)
    revs = sorted(st.get("revisions") or [], key=lambda r: r["revision"])
    if to_revision:
        rev = next((r for r in revs if r["revision"] == to_revision), None)
        if rev is None:
            raise MinidockError(f"error: unable to find specified revision {to_revision} in history", exit_code=1)
    else:
        if len(revs) < 2:
            raise MinidockError(f'error: no rollout history found for deployment "{name}"', exit_code=1)
        rev = revs[-2]

    def change(dep):
        dep["spec"]["template"] = json.loads(json.dumps(rev["template"]))

    update_deployment(ns, name, change)


def wait_status(ns: str, name: str, timeout: float | None, report) -> int:
    """rollout status: 0 when rolled out, 1 on the progress deadline (or the timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        dep = require("deployments", ns, name)
        controller.ensure(ns, name)
        st = store.get_status("deployments", ns, name)
        want = objects.deployment_defaults(dep["spec"])
        desired = st.get("desired", want["replicas"])
        gen_ok = st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 1)
        if gen_ok and st.get("deadlineExceeded"):
            report(f'error: deployment "{name}" exceeded its progress deadline', err=True)
            if st.get("lastReason"):
                report(f"reason: {st['lastReason']}", err=True)
            return 1
        msg = None
        if not gen_ok:
            msg = "Waiting for deployment spec update to be observed..."
        elif st.get("updatedReplicas", 0) < desired:
            msg = (
                f'Waiting for deployment "{name}" rollout to finish: {st.get("updatedReplicas", 0)} out of '
                f"{desired} new replicas have been updated..."
            )
        elif st.get("replicas", 0) > st.get("updatedReplicas", 0):
            msg = (
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{st['replicas'] - st['updatedReplicas']} old replicas are pending termination..."
            )
        elif st.get("terminatingReplicas", 0):  # minidock waits for them: their exit rewrites hosts files
            msg = (
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{st['terminatingReplicas']} old replicas are pending termination..."
            )
        elif st.get("availableReplicas", 0) < st.get("updatedReplicas", 0) or st.get("updatedAvailable", 0) < desired:
            msg = (
                f'Waiting for deployment "{name}" rollout to finish: {st.get("updatedAvailable", 0)} of '
                f"{desired} updated replicas are available..."
            )
        if msg is None:
            report(f'deployment "{name}" successfully rolled out')
            return 0
        if msg != last:
            report(msg)
            last = msg
        if deadline is not None and time.monotonic() > deadline:
            report("error: timed out waiting for the condition", err=True)
            return 1
        time.sleep(0.2)
