"""Network logic without root: IPAM, subnet choice, ports, hosts files, netlink encoding."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from minidock.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    from minidock.network import store

    monkeypatch.setattr(store, "host_routes", lambda exclude: [])
    return tmp_path


def test_default_network_is_created_on_first_use(root):
    from minidock.network import store

    net = store.get_or_create("bridge")
    assert net["IPAM"]["Config"][0] == {"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}
    assert store.bridge_name(net) == "minidock0"
    with pytest.raises(NotFound, match="network nosuch not found"):
        store.get_or_create("nosuch")


def test_allocation_is_sequential_unique_and_skips_the_gateway(root):
    from minidock.network import store

    net = store.get_or_create("bridge")
    ips = []
    for i in range(5):
        ip = store.allocate(net, f"c{i}")
        net["Containers"][f"c{i}"] = {"IPv4Address": f"{ip}/16"}
        ips.append(ip)
    assert ips == [f"172.30.0.{n}" for n in range(2, 7)]
    del net["Containers"]["c1"]
    assert store.allocate(net, "new") == "172.30.0.3"  # a released address is reused


def test_small_subnet_runs_out(root):
    from minidock.network import store

    net = store.new_network("tiny", "10.99.0.0/30")
    ip = store.allocate(net, "a")
    assert ip == "10.99.0.2"
    net["Containers"]["a"] = {"IPv4Address": ip + "/30"}
    with pytest.raises(Conflict, match="no available IPv4 address"):
        store.allocate(net, "b")


def test_static_ip_needs_a_user_subnet(root):
    from minidock.network import store

    net = store.get_or_create("bridge")
    with pytest.raises(InvalidArgument, match="user configured subnets"):
        store.allocate(net, "a", "172.30.0.9")
    user = store.new_network("mine", "10.98.0.0/24")
    assert store.allocate(user, "a", "10.98.0.9") == "10.98.0.9"
    user["Containers"]["a"] = {"IPv4Address": "10.98.0.9/24"}
    with pytest.raises(Conflict, match="Address already in use"):
        store.allocate(user, "b", "10.98.0.9")
    with pytest.raises(InvalidArgument, match="not in"):
        store.allocate(user, "b", "10.97.0.9")


def test_subnets_avoid_host_routes_and_each_other(root, monkeypatch):
    from minidock.network import store

    monkeypatch.setattr(store, "host_routes", lambda exclude: [ipaddress.IPv4Network("172.30.5.0/24")])
    net = store.get_or_create("bridge")
    assert net["IPAM"]["Config"][0]["Subnet"] == "172.31.0.0/16"  # 172.30/16 clashes: the next one
    a = store.new_network("a")
    b = store.new_network("b")
    subs = {store.subnet(n) for n in (net, a, b)}
    assert len(subs) == 3 and not any(x.overlaps(y) for x in subs for y in subs if x != y)
    with pytest.raises(Conflict, match="Pool overlaps"):
        store.new_network("c", str(store.subnet(a)))
    with pytest.raises(Conflict, match="already exists"):
        store.new_network("a")
    with pytest.raises(InvalidArgument, match="invalid network name"):
        store.new_network("bad name")


def test_host_routes_parse_proc_net_route():
    from minidock.network import store

    routes = store.host_routes(set())
    assert all(isinstance(r, ipaddress.IPv4Network) for r in routes)


def test_mac_follows_docker():
    from minidock.network import store

    assert store.mac_for("172.30.0.2") == "02:42:ac:1e:00:02"


def _rec(**hc):
    return {"Id": "a" * 64, "Name": "/web",
            "Config": {"Hostname": "aaaaaaaaaaaa", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
            "HostConfig": {"NetworkMode": "bridge", **hc}}


def test_port_bindings_publish_all_adds_exposed_ports():
    from minidock import network

    rec = _rec(PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, PublishAllPorts=True)
    assert network.port_bindings(rec) == [("80/tcp", "", "8080"), ("53/udp", "", "")]
    assert network.port_bindings(_rec()) == []


def test_a_port_reserved_by_another_container_is_taken():
    from minidock import network

    reserved = {"tcp/0.0.0.0/8080": "other"}
    assert network._port_taken(reserved, "tcp", "", 8080)
    assert network._port_taken(reserved, "tcp", "127.0.0.1", 8080)
    free = network._random_port({}, "tcp", "127.0.0.1")
    assert not network._port_taken({}, "tcp", "127.0.0.1", free)


def test_hosts_file_lists_peers_on_user_networks_only(root):
    from minidock import network
    from minidock.network import store

    net = store.new_network("app")
    net["Containers"]["b" * 64] = {"Name": "db", "IPv4Address": "172.31.0.3/16", "Aliases": ["database", "b" * 12]}
    store.save(net)
    bridge = store.get_or_create("bridge")
    bridge["Containers"]["c" * 64] = {"Name": "other", "IPv4Address": "172.30.0.9/16", "Aliases": []}
    store.save(bridge)
    rec = _rec(ExtraHosts=["gw:host-gateway", "x:1.2.3.4"])
    rec["NetworkSettings"] = {"Networks": {
        "app": {"IPAddress": "172.31.0.2", "Gateway": "172.31.0.1"},
        "bridge": {"IPAddress": "172.30.0.2", "Gateway": "172.30.0.1"}}}
    text = network.hosts_file(rec)
    assert "127.0.0.1\tlocalhost" in text
    assert "172.31.0.2\taaaaaaaaaaaa web\n" in text  # its hostname, and its name on a user network
    assert "172.31.0.3\tdb database bbbbbbbbbbbb\n" in text
    assert "172.31.0.1\tgw\n" in text and "1.2.3.4\tx\n" in text
    assert "other" not in text  # no names on the default bridge, as in Docker


def test_netlink_attributes_round_trip():
    from minidock.network import netlink

    data = netlink.attr(3, "eth0") + netlink.attr(4, 1500) + netlink.attr(10, b"\x01\x02")
    attrs = netlink.parse_attrs(data)
    assert attrs[3] == b"eth0\0" and attrs[4] == (1500).to_bytes(4, "little") and attrs[10] == b"\x01\x02"
    assert len(data) % 4 == 0


def test_veth_names_fit_ifnamsiz():
    from minidock import network

    assert len(network.veth_name("f" * 64, 9)) <= 15
    assert network._VETH.match(network.veth_name("0123456789abcdef", 0))


def test_network_package_does_not_import_pyroute2():
    code = "import sys, minidock.network; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_with_network_none_imports_no_network_code(tmp_path):
    """`run --network none` (here: its parsing and engine modules) never imports the network package."""
    code = ("import sys; import minidock.cli.containers, minidock.engine.lifecycle; "
            "print(sorted(m for m in sys.modules if m.startswith(('pyroute2', 'minidock.network'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_iptables_fallback_rules(monkeypatch):
    from minidock.network import nat

    calls = []
    monkeypatch.setattr(nat._IPTables, "run", lambda self, table, args, **kw: calls.append((table, args)))
    monkeypatch.setenv("MINIDOCK_NAT", "iptables")
    nat.add_port("tcp", "127.0.0.1", 8080, "172.30.0.2", 80)
    nat.add_network("172.30.0.0/16", "minidock0")
    assert calls[0] == ("nat", "-A MINIDOCK-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT "
                               "--to-destination 172.30.0.2:80")
    assert ("nat", "-A MINIDOCK-POSTROUTING -s 172.30.0.0/16 ! -o minidock0 -j MASQUERADE") in calls
    monkeypatch.setenv("MINIDOCK_NAT", "nft")
    assert not nat._use_iptables()


def test_a_dead_namespace_is_left_to_the_kernel():
    import os

    from minidock import network

    ino = os.stat("/proc/self/ns/net").st_ino
    assert network._netns_alive(os.getpid(), ino)
    assert not network._netns_alive(os.getpid(), ino + 1)  # the pid was reused by someone else
    assert not network._netns_alive(2 ** 22 + 12345, ino)  # no such process
