"""kubectl-shaped verbs: apply, get, describe, delete, scale, set image, rollout, autoscale, kube.

Output shapes and messages follow kubectl 1.32 (and podman for `kube play|down|generate`).
Everything here reads objects and status from disk (minidock/apps/store.py); commands that need
a Deployment's controller start it if it is not running.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click

from minidock.errors import MinidockError

NS_OPT = click.option("-n", "--namespace", default="default", show_default=True, help="The namespace.")


def _ago(ts: float | str | None) -> str:
    if not ts:
        return "<unknown>"
    if isinstance(ts, str):
        import calendar

        ts = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    s = int(max(time.time() - ts, 0))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _table(cols: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    return "\n".join("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [cols, *rows])


def _read_sources(files: tuple[str, ...], recursive: bool = False) -> list[tuple[str, str]]:
    out = []
    for f in files:
        if f == "-":
            out.append(("STDIN", sys.stdin.read()))
        elif os.path.isdir(f):
            walk = os.walk(f) if recursive else [(f, [], os.listdir(f))]
            for d, _, names in walk:
                for n in sorted(names):
                    if n.endswith((".yaml", ".yml", ".json")):
                        out.append(_read_file(os.path.join(d, n)))
        else:
            out.append(_read_file(f))
    return out


def _read_file(path: str) -> tuple[str, str]:
    try:
        with open(path) as fh:
            return path, fh.read()
    except OSError as e:
        raise MinidockError(
            f'error: the path "{path}" does not exist' if e.errno == 2 else f"error: {path}: {e.strerror}", exit_code=1
        ) from None


def load_all(files: tuple[str, ...], recursive: bool = False) -> list[dict]:
    from minidock.apps import objects

    docs = []
    for source, text in _read_sources(files, recursive):
        docs += objects.load_and_validate(text, source)
    if not docs:
        raise MinidockError("error: no objects passed to apply", exit_code=1)
    return docs


# --- apply / delete --------------------------------------------------------------------------------
@click.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, help="File, directory or - (stdin).")
@click.option("-R", "--recursive", is_flag=True, help="Process the directory used in -f recursively.")
@NS_OPT
def apply(files, recursive, namespace):
    """Apply a configuration (Kubernetes YAML) to minidock: all or nothing."""
    from minidock.apps import api

    docs = load_all(files, recursive)
    for d in docs:
        if namespace != "default" and d["metadata"].get("namespace", "default") == "default":
            d["metadata"]["namespace"] = namespace
    for line in api.apply_documents(docs):
        click.echo(line)


@click.command()
@click.option("-f", "--filename", "files", multiple=True, help="The file(s) whose objects to delete.")
@click.option("--wait/--no-wait", default=True, help="Wait for the pods to be gone.")
@click.option("--ignore-not-found", is_flag=True)
@NS_OPT
@click.argument("refs", nargs=-1)
def delete(files, wait, ignore_not_found, namespace, refs):
    """Delete objects by file or by KIND/NAME (or KIND NAME...)."""
    from minidock.apps import api
    from minidock.errors import NotFound

    targets = []
    if files:
        for d in load_all(files):
            targets.append((api.plural_of(d["kind"]), d["metadata"]["namespace"], d["metadata"]["name"]))
    elif refs and "/" not in refs[0] and len(refs) >= 2:
        targets = [(api.plural_of(refs[0]), namespace, r) for r in refs[1:]]
    else:
        targets = [(*api.split_ref(r), namespace) for r in refs]
        targets = [(p, ns, n) for p, n, ns in targets]
    if not targets:
        raise MinidockError("error: resource(s) were provided, but no name was specified", exit_code=1)
    code = 0
    for plural, ns, name in targets:
        try:
            click.echo(api.delete(plural, ns, name, wait=wait))
        except NotFound as e:
            if not ignore_not_found:
                click.echo(e.message, err=True)
                code = 1
    return code


# --- get -----------------------------------------------------------------------------------------
def _dep_rows(ns, wide):
    from minidock.apps import objects, store

    rows = []
    for d in store.listing("deployments", ns):
        m = d["metadata"]
        st = store.get_status("deployments", m["namespace"], m["name"])
        want = st.get("desired", objects.deployment_defaults(d["spec"])["replicas"])
        row = [
            m["name"],
            f"{st.get('readyReplicas', 0)}/{want}",
            str(st.get("updatedReplicas", 0)),
            str(st.get("availableReplicas", 0)),
            _ago(m.get("creationTimestamp")),
        ]
        if wide:
            cs = d["spec"]["template"]["spec"]["containers"]
            row += [
                ",".join(c["name"] for c in cs),
                ",".join(c["image"] for c in cs),
                ",".join(f"{k}={v}" for k, v in d["spec"]["selector"]["matchLabels"].items()),
            ]
        rows.append(row)
    cols = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (["CONTAINERS", "IMAGES", "SELECTOR"] if wide else [])
    return cols, rows


def pod_status(p: dict) -> str:
    if p.get("terminating"):
        return "Terminating"
    if p["phase"] == "Failed":
        return p.get("reason") or "Error"
    if p["phase"] == "Pending":
        return "Pending"
    return "Running"


def _pod_rows(ns, wide):
    from minidock.apps import store

    rows = []
    for p in store.pods(ns):
        n = len(p["spec"].get("containers") or [])
        ready = n if p.get("ready") else 0
        row = [p["name"], f"{ready}/{n}", pod_status(p), str(p.get("restarts", 0)), _ago(p.get("created"))]
        if wide:
            row += [p.get("ip") or "<none>", os.uname().nodename]
        rows.append(row)
    return ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else []), rows


def _svc_rows(ns, wide):
    from minidock.apps import store

    rows = []
    for s in store.listing("services", ns):
        sp = s["spec"]
        ports = ",".join(
            f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
            for p in sp["ports"]
        )
        row = [
            s["metadata"]["name"],
            sp.get("type", "ClusterIP"),
            sp.get("clusterIP", ""),
            "<none>",
            ports,
            _ago(s["metadata"].get("creationTimestamp")),
        ]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (sp.get("selector") or {}).items()) or "<none>")
        rows.append(row)
    return ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (["SELECTOR"] if wide else []), rows


def _hpa_rows(ns, wide):
    from minidock.apps import store

    rows = []
    for h in store.listing("horizontalpodautoscalers", ns):
        m, sp = h["metadata"], h["spec"]
        st = store.get_status("horizontalpodautoscalers", m["namespace"], m["name"])
        target = next(
            (
                ((x.get("resource") or {}).get("target") or {}).get("averageUtilization")
                for x in sp.get("metrics") or []
            ),
            80,
        )
        cur = st.get("currentCPUUtilizationPercentage")
        rows.append(
            [
                m["name"],
                f"Deployment/{sp['scaleTargetRef']['name']}",
                f"cpu: {'<unknown>' if cur is None else str(cur) + '%'}/{target}%",
                str(sp.get("minReplicas", 1)),
                str(sp["maxReplicas"]),
                str(st.get("currentReplicas", 0)),
                _ago(m.get("creationTimestamp")),
            ]
        )
    return ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], rows


def _simple_rows(plural):
    def rows_of(ns, wide):
        from minidock.apps import store

        rows = []
        for o in store.listing(plural, ns):
            m = o["metadata"]
            if plural == "configmaps":
                rows.append([m["name"], str(len(o.get("data") or {})), _ago(m.get("creationTimestamp"))])
            elif plural == "secrets":
                rows.append(
                    [
                        m["name"],
                        o.get("type", "Opaque"),
                        str(len(o.get("data") or {}) + len(o.get("stringData") or {})),
                        _ago(m.get("creationTimestamp")),
                    ]
                )
            else:
                req = ((o["spec"].get("resources") or {}).get("requests") or {}).get("storage", "")
                rows.append(
                    [
                        m["name"],
                        "Bound",
                        m["name"],
                        req,
                        ",".join(o["spec"].get("accessModes") or []),
                        _ago(m.get("creationTimestamp")),
                    ]
                )
        cols = {"configmaps": ["NAME", "DATA", "AGE"], "secrets": ["NAME", "TYPE", "DATA", "AGE"]}.get(
            plural, ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "AGE"]
        )
        return cols, rows

    return rows_of


ROWS = {
    "deployments": _dep_rows,
    "pods": _pod_rows,
    "services": _svc_rows,
    "horizontalpodautoscalers": _hpa_rows,
    "configmaps": _simple_rows("configmaps"),
    "secrets": _simple_rows("secrets"),
    "persistentvolumeclaims": _simple_rows("persistentvolumeclaims"),
}
PREFIX = {
    "deployments": "deployment.apps",
    "pods": "pod",
    "services": "service",
    "horizontalpodautoscalers": "horizontalpodautoscaler.autoscaling",
}


def full_object(plural: str, o: dict) -> dict:
    """The object as `-o yaml` shows it: what was applied plus its status."""
    from minidock.apps import store

    if plural == "pods":
        meta = {
            "name": o["name"],
            "namespace": o["namespace"],
            "labels": o.get("labels") or {},
            "uid": o.get("uid", ""),
            "creationTimestamp": o.get("creationTimestamp", ""),
        }
        status = {
            "phase": "Running" if pod_status(o) == "Running" else o["phase"],
            "podIP": o.get("ip") or None,
            "conditions": [{"type": "Ready", "status": str(bool(o.get("ready")))}],
            "containerStatuses": [
                {"name": c["name"], "containerID": f"minidock://{c['id']}", "ready": bool(o.get("ready"))}
                for c in o["containers"]
            ],
        }
        if o.get("reason"):
            status.update(reason=o["reason"], message=o.get("message", ""))
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": o["spec"], "status": status}
    out = json.loads(json.dumps(o))
    m = o["metadata"]
    st = store.get_status(plural, m["namespace"], m["name"])
    if plural == "deployments":
        out["status"] = {
            k: st[k]
            for k in (
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "conditions",
            )
            if k in st
        }
    elif st:
        out["status"] = st
    return out


def _listing(plural, ns):
    from minidock.apps import store

    if plural == "pods":
        return store.pods(ns)
    return store.listing(plural, ns)


def _name_of(o):
    return o["name"] if "name" in o else o["metadata"]["name"]


@click.command()
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), help="Output format.")
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", help="Label selector (key=value[,key=value]).")
@NS_OPT
@click.argument("what", nargs=-1, required=True)
def get(output, watch, all_namespaces, selector, namespace, what):
    """Display objects: deployments|pods|services|hpa|configmaps|secrets|pvc|all [NAME]."""
    from minidock.apps import api, controller

    ns = None if all_namespaces else namespace
    kinds = what[0].split(",")
    name = what[1] if len(what) > 1 else None
    if "/" in what[0]:
        p, name = api.split_ref(what[0])
        kinds = [p]
    plurals = (
        ["pods", "services", "deployments", "horizontalpodautoscalers"]
        if kinds == ["all"]
        else [api.plural_of(k) for k in kinds]
    )
    controller.ensure_all(ns)
    sel = dict(kv.split("=", 1) for kv in selector.split(",")) if selector else None

    def select(plural, objs):
        if name:
            objs = [o for o in objs if _name_of(o) == name]
        if sel:
            objs = [
                o
                for o in objs
                if all(
                    (o.get("labels") if plural == "pods" else o["metadata"].get("labels") or {}).get(k) == v
                    for k, v in sel.items()
                )
            ]
        return objs

    if output in ("yaml", "json", "name"):
        items = [full_object(p, o) for p in plurals for o in select(p, _listing(p, ns))]
        if name and not items:
            raise api.not_found(plurals[0], name)
        if output == "name":
            for p in plurals:
                for o in select(p, _listing(p, ns)):
                    click.echo(f"{PREFIX.get(p, p[:-1])}/{_name_of(o)}")
            return
        doc = (
            items[0]
            if name and len(items) == 1
            else {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
        )
        if output == "json":
            click.echo(json.dumps(doc, indent=4))
        else:
            import yaml

            click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
        return

    def render(header: bool) -> list[str]:
        blocks = []
        for p in plurals:
            cols, rows = ROWS[p](ns, output == "wide")
            names = {_name_of(o) for o in select(p, _listing(p, ns))}
            rows = [r for r in rows if r[0] in names]
            if not rows:
                continue
            if kinds == ["all"]:
                rows = [[f"{PREFIX.get(p, p)}/{r[0]}", *r[1:]] for r in rows]
            text = _table(cols, rows).splitlines()
            blocks.append(text if header else text[1:])
        return blocks

    blocks = render(True)
    if not blocks and not watch:
        if name:
            raise api.not_found(plurals[0], name)
        click.echo(f"No resources found in {ns or 'any'} namespace.", err=True)
        return
    click.echo("\n\n".join("\n".join(b) for b in blocks))
    if not watch:
        return
    seen = {line for b in blocks for line in b[1:]}
    try:
        while True:
            time.sleep(0.5)
            controller.ensure_all(ns)
            for b in render(True):
                for line in b[1:]:
                    if line not in seen:
                        seen.add(line)
                        click.echo(line)
    except KeyboardInterrupt:
        return


# --- describe ----------------------------------------------------------------------------------------
@click.command()
@NS_OPT
@click.argument("ref")
@click.argument("name", required=False)
def describe(namespace, ref, name):
    """Show details of an object and its events: describe KIND/NAME."""
    from minidock.apps import api, controller, store

    plural, oname = api.split_ref(ref) if name is None else (api.plural_of(ref), name)
    ns = namespace
    if plural == "pods":
        p = store.get_pod(ns, oname)
        if p is None:
            raise MinidockError(f'Error from server (NotFound): pods "{oname}" not found', exit_code=1)
        out = [
            ("Name", p["name"]),
            ("Namespace", ns),
            ("Node", os.uname().nodename),
            ("Start Time", p.get("creationTimestamp", "")),
            ("Labels", "\n".join(f"{k}={v}" for k, v in (p.get("labels") or {}).items())),
            ("Status", pod_status(p)),
            ("IP", p.get("ip") or "<none>"),
            ("Controlled By", p["owner"]),
        ]
        if p.get("reason"):
            out += [("Reason", p["reason"]), ("Message", p.get("message", ""))]
        text = _fields(out)
        text += "\nContainers:\n"
        for c, cs in zip(p["containers"], p["spec"].get("containers") or []):
            text += f"  {cs['name']}:\n    Container ID:  minidock://{c['id']}\n    Image:         {cs['image']}\n"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if cs.get(probe):
                    text += f"    {probe[:-5].capitalize()}:     {_probe_text(cs[probe])}\n"
        text += f"Conditions:\n  Type    Status\n  Ready   {bool(p.get('ready'))}\n"
        click.echo(text + _events(ns, "Pod", oname))
        return
    obj = api.require(plural, ns, oname)
    m = obj["metadata"]
    if plural == "deployments":
        from minidock.apps import objects

        controller.ensure(ns, oname)
        st = store.get_status(plural, ns, oname)
        cfg = objects.deployment_defaults(obj["spec"])
        tmpl = obj["spec"]["template"]
        fields = [
            ("Name", oname),
            ("Namespace", ns),
            ("CreationTimestamp", m.get("creationTimestamp", "")),
            ("Labels", _kv(m.get("labels"))),
            ("Annotations", f"deployment.kubernetes.io/revision: {st.get('currentRevision', '')}"),
            ("Selector", ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items())),
            (
                "Replicas",
                f"{st.get('desired', cfg['replicas'])} desired | {st.get('updatedReplicas', 0)} updated | "
                f"{st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} available | "
                f"{st.get('unavailableReplicas', 0)} unavailable",
            ),
            ("StrategyType", cfg["strategy"]),
            ("MinReadySeconds", str(cfg["minReadySeconds"])),
        ]
        if cfg["strategy"] == "RollingUpdate":
            fields.append(
                ("RollingUpdateStrategy", f"{cfg['maxUnavailable']} max unavailable, {cfg['maxSurge']} max surge")
            )
        text = _fields(fields)
        text += f"\nPod Template:\n  Labels:  {_kv((tmpl.get('metadata') or {}).get('labels'))}\n  Containers:\n"
        for c in tmpl["spec"]["containers"]:
            text += f"   {c['name']}:\n    Image:      {c['image']}\n"
            for p in c.get("ports") or []:
                text += f"    Port:       {p['containerPort']}/{p.get('protocol', 'TCP')}\n"
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe):
                    text += f"    {probe[:-5].capitalize()}:  {_probe_text(c[probe])}\n"
        text += "Conditions:\n  Type           Status  Reason\n  ----           ------  ------\n"
        for c in st.get("conditions") or []:
            text += f"  {c['type']:<14} {c['status']:<7} {c['reason']}\n"
            if c.get("message"):
                text += f"                         {c['message']}\n"
        pods_by_rev = {}
        for p in store.pods(ns, f"deployments/{oname}"):
            pods_by_rev.setdefault(p["hash"], []).append(p)
        revs = sorted(st.get("revisions") or [], key=lambda r: r["revision"])
        olds = [r for r in revs if r["hash"] != st.get("currentHash") and pods_by_rev.get(r["hash"])]
        text += (
            "OldReplicaSets:  "
            + (
                ", ".join(f"{oname}-{r['hash']} ({len(pods_by_rev[r['hash']])} replicas created)" for r in olds)
                or "<none>"
            )
            + "\n"
        )
        cur = st.get("currentHash")
        text += (
            f"NewReplicaSet:   {oname}-{cur} ({len(pods_by_rev.get(cur, []))} replicas created)\n"
            if cur
            else "NewReplicaSet:   <none>\n"
        )
        click.echo(text + _events(ns, None, oname, prefix=f"{oname}-"))
        return
    if plural == "services":
        from minidock.apps import services

        sp = obj["spec"]
        eps = services.endpoints(obj)
        fields = [
            ("Name", oname),
            ("Namespace", ns),
            ("Labels", _kv(m.get("labels"))),
            ("Selector", ",".join(f"{k}={v}" for k, v in (sp.get("selector") or {}).items()) or "<none>"),
            ("Type", sp.get("type", "ClusterIP")),
            ("IP Family Policy", "SingleStack"),
            ("IP Families", "IPv4"),
            ("IP", sp.get("clusterIP", "")),
            ("IPs", sp.get("clusterIP", "")),
        ]
        for p in sp["ports"]:
            fields.append(("Port", f"{p.get('name') or '<unset>'}  {p['port']}/{p.get('protocol', 'TCP')}"))
            fields.append(("TargetPort", f"{p.get('targetPort')}/{p.get('protocol', 'TCP')}"))
            if p.get("nodePort"):
                fields.append(("NodePort", f"{p.get('name') or '<unset>'}  {p['nodePort']}/{p.get('protocol', 'TCP')}"))
            fields.append(("Endpoints", ",".join(f"{ip}:{t[str(p['port'])]}" for _, ip, t in eps) or "<none>"))
        click.echo(_fields(fields) + "\n" + _events(ns, "Service", oname))
        return
    import yaml

    click.echo(yaml.safe_dump(full_object(plural, obj), sort_keys=False).rstrip())
    click.echo(_events(ns, api.objects.PLURAL[plural], oname))


def _kv(d):
    return "\n".join(f"{k}={v}" for k, v in (d or {}).items()) or "<none>"


def _fields(pairs) -> str:
    width = max(len(k) for k, _ in pairs) + 2
    out = []
    for k, v in pairs:
        lines = str(v).splitlines() or [""]
        out.append(f"{k + ':':<{width}}{lines[0]}")
        out += [" " * width + x for x in lines[1:]]
    return "\n".join(out)


def _probe_text(p: dict) -> str:
    from minidock.apps import objects

    d = objects.probe_defaults(p)
    if "httpGet" in p:
        how = f"http-get http://:{p['httpGet']['port']}{p['httpGet'].get('path', '/')}"
    elif "tcpSocket" in p:
        how = f"tcp-socket :{p['tcpSocket']['port']}"
    else:
        how = "exec " + json.dumps(p["exec"]["command"])
    return (
        f"{how} delay={d['initialDelaySeconds']}s timeout={d['timeoutSeconds']}s period={d['periodSeconds']}s "
        f"#success={d['successThreshold']} #failure={d['failureThreshold']}"
    )


def _events(ns, kind, name, prefix=None) -> str:
    from minidock.apps import store

    evs = [
        e
        for e in store.events(ns)
        if (e["name"] == name and (kind is None or e["kind"] == kind)) or (prefix and e["name"].startswith(prefix))
    ]
    if not evs:
        return "Events:          <none>"
    rows = [
        [e["type"], e["reason"], _ago(e["time"]), f"{e['kind'].lower()}/{e['name']}", e["message"]] for e in evs[-30:]
    ]
    return "Events:\n" + "\n".join(
        "  " + line for line in _table(["Type", "Reason", "Age", "From", "Message"], rows).splitlines()
    )


# --- scale, set image, autoscale ---------------------------------------------------------------------
@click.command()
@click.option("--replicas", type=int, required=True, help="The new desired number of replicas.")
@NS_OPT
@click.argument("ref")
def scale(replicas, namespace, ref):
    """Set a new size for a Deployment: scale deployment/NAME --replicas N."""
    from minidock.apps import api

    plural, name = api.split_ref(ref)
    if plural != "deployments":
        raise MinidockError(f"error: cannot scale {plural}: only deployments scale", exit_code=1)
    if replicas < 0:
        raise MinidockError(
            "error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0", exit_code=1
        )
    api.update_deployment(namespace, name, lambda d: d["spec"].__setitem__("replicas", replicas))
    click.echo(f"deployment.apps/{name} scaled")


@click.group("set")
def set_():
    """Set specific features on objects (image)."""


@set_.command("image")
@NS_OPT
@click.argument("ref")
@click.argument("pairs", nargs=-1, required=True)
def set_image(namespace, ref, pairs):
    """set image deployment/NAME CONTAINER=IMAGE..."""
    from minidock.apps import api

    plural, name = api.split_ref(ref)
    if plural != "deployments":
        raise MinidockError(
            f"error: set image on {plural} is not supported by minidock (deployments only)", exit_code=1
        )
    wanted = {}
    for p in pairs:
        if "=" not in p:
            raise MinidockError(
                f"error: there is no need to specify a resource type as a separate argument when "
                f"passing arguments in resource/name form: {p!r} is not CONTAINER=IMAGE",
                exit_code=1,
            )
        k, _, v = p.partition("=")
        wanted[k] = v
    api.set_image(namespace, name, wanted)
    click.echo(f"deployment.apps/{name} image updated")


@click.command()
@click.option("--min", "min_", type=int, default=1, help="Lower limit for the number of pods.")
@click.option("--max", "max_", type=int, required=True, help="Upper limit for the number of pods.")
@click.option("--cpu-percent", type=int, default=80, help="Target average CPU utilization (of the request).")
@NS_OPT
@click.argument("ref")
def autoscale(min_, max_, cpu_percent, namespace, ref):
    """Create a HorizontalPodAutoscaler for a Deployment."""
    from minidock.apps import api, objects

    plural, name = api.split_ref(ref)
    api.require(plural, namespace, name)
    doc = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_,
            "maxReplicas": max_,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}},
                }
            ],
        },
    }
    objects.validate(doc, "autoscale", 0)
    api.apply_documents([doc])
    click.echo(f"horizontalpodautoscaler.autoscaling/{name} autoscaled")


# --- rollout ---------------------------------------------------------------------------------------
@click.group()
def rollout():
    """Manage the rollout of a Deployment: status, history, undo, pause, resume, restart."""


def _dep(ref):
    from minidock.apps import api

    plural, name = api.split_ref(ref, "deployment")
    if plural != "deployments":
        raise MinidockError(f"error: no rollout for {plural}: minidock rolls out deployments", exit_code=1)
    return name


@rollout.command("status")
@click.option("--timeout", default="0", help="How long to wait (0: until the rollout ends or its deadline).")
@click.option("-w", "--watch/--no-watch", default=True)
@NS_OPT
@click.argument("ref")
def rollout_status(timeout, watch, namespace, ref):
    """Wait for a rollout to finish; exit 1 if it passes its progress deadline."""
    from minidock.apps import api

    t = _seconds(timeout)
    return api.wait_status(
        namespace, _dep(ref), t if t else None if watch else 0.01, lambda msg, err=False: click.echo(msg, err=err)
    )


def _seconds(text: str) -> float:
    text = str(text)
    mult = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in mult:
        return float(text[:-1]) * mult[text[-1]]
    return float(text)


@rollout.command("history")
@click.option("--revision", type=int, help="Show the details of one revision.")
@NS_OPT
@click.argument("ref")
def rollout_history(revision, namespace, ref):
    """List the revisions of a Deployment."""
    from minidock.apps import api, controller, store

    name = _dep(ref)
    api.require("deployments", namespace, name)
    controller.ensure(namespace, name)
    revs = sorted(store.get_status("deployments", namespace, name).get("revisions") or [], key=lambda r: r["revision"])
    if revision:
        r = next((r for r in revs if r["revision"] == revision), None)
        if r is None:
            raise MinidockError(f"error: unable to find the specified revision {revision}", exit_code=1)
        import yaml

        click.echo(f"deployment.apps/{name} with revision #{revision}\nPod Template:")
        click.echo("  " + yaml.safe_dump(r["template"], sort_keys=False).replace("\n", "\n  ").rstrip())
        return
    click.echo(f"deployment.apps/{name} ")
    click.echo(
        _table(["REVISION", "CHANGE-CAUSE"], [[str(r["revision"]), r.get("changeCause") or "<none>"] for r in revs])
    )


@rollout.command("undo")
@click.option("--to-revision", type=int, default=0, help="The revision to roll back to (default: the previous one).")
@NS_OPT
@click.argument("ref")
def rollout_undo(to_revision, namespace, ref):
    """Roll back to a previous revision (a new revision from the old template)."""
    from minidock.apps import api

    name = _dep(ref)
    api.undo(namespace, name, to_revision or None)
    click.echo(f"deployment.apps/{name} rolled back")


def _pause(namespace, ref, value: bool):
    from minidock.apps import api

    name = _dep(ref)
    dep = api.require("deployments", namespace, name)
    if bool(dep["spec"].get("paused")) == value:
        click.echo(f"deployment.apps/{name} already {'paused' if value else 'resumed'}")
        return
    api.update_deployment(namespace, name, lambda d: d["spec"].__setitem__("paused", value))
    click.echo(f"deployment.apps/{name} {'paused' if value else 'resumed'}")


@rollout.command("pause")
@NS_OPT
@click.argument("ref")
def rollout_pause(namespace, ref):
    """Pause a rollout: template changes wait until resume."""
    _pause(namespace, ref, True)


@rollout.command("resume")
@NS_OPT
@click.argument("ref")
def rollout_resume(namespace, ref):
    """Resume a paused rollout."""
    _pause(namespace, ref, False)


@rollout.command("restart")
@NS_OPT
@click.argument("ref")
def rollout_restart(namespace, ref):
    """Restart every pod by a rolling update (kubectl's restartedAt annotation)."""
    from minidock.apps import api, store

    name = _dep(ref)

    def change(d):
        meta = d["spec"]["template"].setdefault("metadata", {})
        meta.setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = store.now()

    api.update_deployment(namespace, name, change)
    click.echo(f"deployment.apps/{name} restarted")


# --- logs of a deployment (called by `minidock logs deployment/NAME`) ------------------------------------
def container_of(ref: str, namespace: str = "default") -> str:
    """deployment/NAME or pod/NAME -> the ID of a container (kubectl picks the first pod)."""
    from minidock.apps import api, controller, store

    plural, name = api.split_ref(ref)
    if plural == "pods":
        p = store.get_pod(namespace, name)
    elif plural == "deployments":
        api.require(plural, namespace, name)
        controller.ensure(namespace, name)
        ps = sorted(
            [p for p in store.pods(namespace, f"deployments/{name}") if p["containers"] and not p.get("terminating")],
            key=lambda p: p.get("created", 0),
        )
        p = ps[0] if ps else None
    else:
        raise MinidockError(f"error: cannot get logs of {plural}", exit_code=1)
    if not p or not p["containers"]:
        raise MinidockError(f"error: no pod found for {ref}", exit_code=1)
    if plural == "deployments":
        click.echo(f"Found {len(ps)} pods, using pod/{p['name']}", err=True) if len(ps) > 1 else None
    return p["containers"][0]["id"]


# --- kube play / down / generate (podman's verbs) ------------------------------------------------------
@click.group()
def kube():
    """Play Kubernetes YAML (podman-compatible): play, down, generate."""


@kube.command("play")
@click.argument("file")
def kube_play(file):
    """Create the objects of a Kubernetes YAML file (= apply -f FILE)."""
    from minidock.apps import api

    for line in api.apply_documents(load_all((file,))):
        click.echo(line)


@kube.command("down")
@click.argument("file")
def kube_down(file):
    """Remove the objects a Kubernetes YAML file created."""
    from minidock.apps import api
    from minidock.errors import NotFound

    for d in reversed(load_all((file,))):
        try:
            click.echo(api.delete(api.plural_of(d["kind"]), d["metadata"]["namespace"], d["metadata"]["name"]))
        except NotFound:
            pass


@kube.command("generate")
@click.option("-s", "--service", is_flag=True, help="Also generate a Service for the published ports.")
@click.argument("refs", nargs=-1, required=True)
def kube_generate(service, refs):
    """Kubernetes YAML for containers or pods (validated against the official schema)."""
    from minidock.apps import generate

    click.echo(generate.generate(list(refs), service), nl=False)
