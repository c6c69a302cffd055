from minidock import network
from minidock.engine import lifecycle


def test_the_engine_names_the_pseudo_networks_as_network_ls_does():
    for name, nid in lifecycle.PSEUDO_NETWORK_IDS.items():
        assert network.pseudo(name)["Id"] == nid
