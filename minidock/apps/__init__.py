"""Orchestration on one machine: Kubernetes YAML (Deployments, Services, ...) run by minidock.

The package sits above the engine: it may import engine, image, network, volumes, runtime and
kernel; nothing imports it but the CLI (minidock/cli/apps.py).

* :mod:`.objects`  - YAML in, validated objects out (the official schemas, then minidock's subset)
* :mod:`.store`    - objects, status, revisions and events on disk under ``<root>/apps``
* :mod:`.pods`     - a pod = minidock containers sharing the first one's network namespace
* :mod:`.probes`   - liveness/readiness/startup probes (exec, httpGet, tcpSocket)
* :mod:`.services` - virtual IPs, names in hosts files, nftables DNAT maps (kube-proxy's design)
* :mod:`.controller` - one small process per application: replicas, rollouts, probes, scaling
"""
