"""Checks for lab 09: a Deployment of three ready replicas behind a Service that balances them."""

from pathlib import Path

from minidock.labs.checks import check

WEB = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        env: [{name: VERSION, value: v1}]
        command:
        - sh
        - -c
        - mkdir -p /www && echo $(hostname) $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /, port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http, nodePort: 30080}
"""


def prepare(group):
    """The lab's YAML files in the sandbox: web.yaml (v1) and web-v2.yaml."""
    files = Path(group.root) / "files"
    (files / "web.yaml").write_text(WEB)
    (files / "web-v2.yaml").write_text(WEB.replace("value: v1", "value: v2"))


@check("web", "deployment web has 3 ready replicas and service web answers from each of them",
       hint="step 2: minidock apply -f $MINIDOCK_ROOT/files/web.yaml; minidock rollout status deployment/web")
def web(lab):
    import json

    r = lab.md("get", "deployment", "web", "-o", "json")
    lab.require(r.returncode == 0, "there is no deployment web (minidock apply -f $MINIDOCK_ROOT/files/web.yaml)")
    st = json.loads(r.stdout).get("status") or {}
    lab.require(st.get("readyReplicas") == 3, f"web has {st.get('readyReplicas', 0)} ready replicas, not 3")
    script = "for i in $(seq 60); do timeout 5 wget -qO- http://web/; done"
    r = lab.md("run", "--rm", "--network", "minidock-apps", "busybox", "sh", "-c", script, timeout=120)
    names = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    lab.require(len(names) == 3, f"60 requests to http://web/ reached {len(names)} replicas, not 3")
