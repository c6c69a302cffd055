"""IPv6 without root (issue 16): dual-stack IPAM, ULA subnets, per-family port bindings and
conflicts, the ip6 NAT elements, how ports are printed, hosts files, `network create --ipv6`."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from minidock.errors import Conflict, InvalidArgument


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCK_ROOT", str(tmp_path))
    from minidock.network import store

    monkeypatch.setattr(store, "host_routes", lambda exclude: [])
    monkeypatch.setattr(store, "host_routes6", lambda exclude: [])
    monkeypatch.setattr(store, "host_ipv6", lambda: True)
    return tmp_path


def test_bridges_are_dual_stack_with_ula_subnets(root):
    from minidock.network import store

    ula = store.ula_prefix()
    assert ula.prefixlen == 48 and ula.network_address.packed[0] == 0xfd  # RFC 4193
    assert store.ula_prefix() == ula  # stable: derived, not random per call
    default = store.get_or_create("bridge")
    assert default["EnableIPv6"] is True
    assert default["IPAM"]["Config"][1] == {"Subnet": str(ipaddress.IPv6Network((ula.network_address, 64))),
                                            "Gateway": str(ula.network_address + 1)}
    user = store.new_network("app")
    assert store.subnet6(user) == ipaddress.IPv6Network((int(ula.network_address) + (1 << 64), 64))
    assert store.gateway6(user) == str(store.subnet6(user).network_address + 1)


def test_ula_subnets_avoid_host_routes(root, monkeypatch):
    from minidock.network import store

    first = ipaddress.IPv6Network((store.ula_prefix().network_address, 64))
    monkeypatch.setattr(store, "host_routes6", lambda exclude: [first])
    assert store.subnet6(store.get_or_create("bridge")) != first


def test_ipv4_only_and_hosts_without_ipv6(root, monkeypatch):
    from minidock.network import store

    net = store.new_network("v4", ipv6=False)
    assert net["EnableIPv6"] is False and len(net["IPAM"]["Config"]) == 1 and store.subnet6(net) is None
    with pytest.raises(InvalidArgument, match="needs --ipv6"):
        store.new_network("bad", wanted_subnet6="fd00:9::/64", ipv6=False)
    net = store.new_network("given", wanted_subnet6="fd00:9::/64")  # an IPv6 subnet turns IPv6 on
    assert net["EnableIPv6"] is True and str(store.subnet6(net)) == "fd00:9::/64"
    with pytest.raises(Conflict, match="Pool overlaps"):
        store.new_network("again", wanted_subnet6="fd00:9::/80")
    monkeypatch.setattr(store, "host_ipv6", lambda: False)
    assert store.new_network("plain")["EnableIPv6"] is False
    with pytest.raises(InvalidArgument, match="IPv6 is disabled on this host"):
        store.new_network("want6", ipv6=True)


def test_host_ipv6_follows_the_kernel_and_the_iptables_fallback(monkeypatch):
    from minidock.network import nat, store

    monkeypatch.setenv("MINIDOCK_IPV6", "0")
    assert store.host_ipv6() is False
    monkeypatch.delenv("MINIDOCK_IPV6")
    monkeypatch.setattr(nat, "_use_iptables", lambda: True)
    assert store.host_ipv6() is False  # the iptables fallback is IPv4 only


def test_ipv6_allocation_sequential_static_and_taken(root):
    from minidock.network import store

    net = store.new_network("s6", wanted_subnet6="fd00:6::/64")
    ips = []
    for i in range(3):
        ip = store.allocate6(net, f"c{i}")
        net["Containers"][f"c{i}"] = {"IPv4Address": "", "IPv6Address": f"{ip}/64"}
        ips.append(ip)
    assert ips == ["fd00:6::2", "fd00:6::3", "fd00:6::4"]
    assert store.allocate6(net, "x", "fd00:6::50") == "fd00:6::50"
    with pytest.raises(Conflict, match="Address already in use"):
        store.allocate6(net, "x", "fd00:6::3")
    with pytest.raises(InvalidArgument, match="fd00:7::3: It does not belong to any of this network's subnets"):
        store.allocate6(net, "x", "fd00:7::3")
    auto = store.get_or_create("bridge")
    with pytest.raises(InvalidArgument, match="user configured subnets"):
        store.allocate6(auto, "x", str(store.subnet6(auto).network_address + 9))
    assert store.allocate6(net, "c1", preferred="fd00:6::3") == "fd00:6::3"  # its own, kept on restart


def test_bindings_per_family():
    from minidock.network.endpoints import _host_ips

    assert _host_ips("", "fd00::2", "c", "80/tcp", "8080") == ["", "::"]
    assert _host_ips("", "", "c", "80/tcp", "8080") == [""]  # IPv4-only container: no [::] (no proxy)
    assert _host_ips("0.0.0.0", "fd00::2", "c", "80/tcp", "8080") == [""]
    assert _host_ips("127.0.0.1", "fd00::2", "c", "80/tcp", "8080") == ["127.0.0.1"]
    assert _host_ips("::", "fd00::2", "c", "80/tcp", "8080") == ["::"]
    assert _host_ips("fd00:1::1", "fd00::2", "c", "80/tcp", "8080") == ["fd00:1::1"]
    with pytest.raises(InvalidArgument, match="IPv6 loopback"):
        _host_ips("::1", "fd00::2", "c", "80/tcp", "8080")
    with pytest.raises(InvalidArgument, match="has no IPv6 address"):
        _host_ips("::", "", "c", "80/tcp", "8080")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reservations_conflict_within_a_family_only():
    from minidock.network.endpoints import _port_taken

    port = _free_port()
    v6 = {f"tcp/::/{port}": "other"}
    assert _port_taken(v6, "tcp", "::", port)
    assert _port_taken(v6, "tcp", "fd00::1", port)  # (the check by reservation comes before the bind)
    assert not _port_taken(v6, "tcp", "", port)
    assert not _port_taken(v6, "udp", "::", port)  # another protocol
    v4 = {f"tcp/0.0.0.0/{port}": "other"}
    assert _port_taken(v4, "tcp", "127.0.0.1", port)
    assert not _port_taken({f"tcp/fd00::1/{port}": "x"}, "tcp", "127.0.0.1", port)


def test_ip6_nat_elements(monkeypatch):
    from minidock.network import nat

    scripts = []
    monkeypatch.setattr(nat, "nft", lambda script, **kw: scripts.append(script) or True)
    monkeypatch.setattr(nat, "_use_iptables", lambda: False)
    nat.add_port("tcp", "::", 8080, "fd00::2", 80)
    nat.add_port("tcp", "fd00:1::1", 8081, "fd00::2", 80)
    nat.add_port("tcp", "", 8080, "172.30.0.2", 80)
    nat.remove_port("tcp", "::", 8080)
    nat.add_network("fd00::/64", "minidock0")
    assert scripts[0] == "add element ip6 minidock ports { tcp . 8080 : fd00::2 . 80 }\n"
    assert scripts[1] == "add element ip6 minidock ports_ip { fd00:1::1 . tcp . 8081 : fd00::2 . 80 }\n"
    assert scripts[2] == "add element ip minidock ports { tcp . 8080 : 172.30.0.2 . 80 }\n"
    assert scripts[3] == "delete element ip6 minidock ports { tcp . 8080 }\n"
    assert scripts[4].startswith("add element ip6 minidock subnets { fd00::/64 }")
    assert "ip6 daddr ::1 return" in nat.RULESET6 and "route_localnet" not in nat.RULESET6
    scripts.clear()
    nat.add_ports([("tcp", "", 8080, "172.30.0.2", 80), ("tcp", "::", 8080, "fd00::2", 80)])
    assert scripts == ["add element ip minidock ports { tcp . 8080 : 172.30.0.2 . 80 }\n"
                       "add element ip6 minidock ports { tcp . 8080 : fd00::2 . 80 }\n"]  # one nft run


def test_ports_printed_as_docker_28():
    from minidock.cli.views import ports_text
    from minidock.network import port_lines

    rec = {"Name": "/c", "NetworkSettings": {"Ports": {"80/tcp": [
        {"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "fd00::1", "HostPort": "5353"}]}}}
    assert ports_text(rec) == "[fd00::1]:5353->53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert port_lines(rec) == ["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080", "53/udp -> [fd00::1]:5353"]
    assert port_lines(rec, "80") == ["0.0.0.0:8080", "[::]:8080"]


def test_hosts_files_carry_ipv6_addresses(root):
    from minidock import network
    from minidock.network import store

    net = store.new_network("app", wanted_subnet6="fd00:a::/64")
    net["Containers"]["b" * 64] = {"Name": "db", "IPv4Address": "172.31.0.3/16", "IPv6Address": "fd00:a::3/64",
                                   "Aliases": []}
    store.save(net)
    rec = {"Id": "a" * 64, "Name": "/web", "Config": {"Hostname": "web"}, "HostConfig": {"NetworkMode": "app"},
           "NetworkSettings": {"Networks": {"app": {"IPAddress": "172.31.0.2", "Gateway": "172.31.0.1",
                                                    "GlobalIPv6Address": "fd00:a::2"}}}}
    text = network.hosts_file(rec)
    assert "172.31.0.2\tweb" in text and "fd00:a::2\tweb" in text
    assert "172.31.0.3\tdb\n" in text and "fd00:a::3\tdb\n" in text


def test_network_create_ipv6_flag_parses_as_go_does(monkeypatch):
    from click.testing import CliRunner

    from minidock import network as netpkg
    from minidock.cli import network as cli

    calls = []
    monkeypatch.setattr(netpkg, "create", lambda name, subnets, gateways, labels, driver, internal, ipv6:
                        calls.append((name, subnets, ipv6)) or {"Id": "x" * 64})
    monkeypatch.setattr(cli, "_event", lambda *a, **k: None)
    run = CliRunner().invoke
    assert run(cli.network, ["create", "--ipv6", "n1"]).exit_code == 0
    assert run(cli.network, ["create", "--ipv6=false", "n2"]).exit_code == 0
    assert run(cli.network, ["create", "--subnet", "10.0.0.0/24", "--subnet", "fd00::/64", "n3"]).exit_code == 0
    r = run(cli.network, ["create", "--ipv6=maybe", "n4"])
    assert r.exit_code != 0 and 'invalid argument "maybe" for "--ipv6" flag' in r.output
    assert calls == [("n1", [], True), ("n2", [], False), ("n3", ["10.0.0.0/24", "fd00::/64"], None)]
