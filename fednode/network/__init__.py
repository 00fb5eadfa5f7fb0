"""Chain: a local permissioned consortium of geth 1.13 Clique validators on loopback.

``network_up`` writes keys, a Clique genesis and datadirs into a network folder, starts one geth
validator per key with static peering and waits until all of them peer and seal;
``network_status`` reports on them and ``network_down`` stops them gracefully; ``join_network``
brings one operator's validator onto an existing network from its genesis and peers. Every other tool
finds the chain through ``<dir>/network.json`` (``load_network``).
"""

from fednode.network.genesis import build_clique_genesis, clique_extra_data, parse_clique_signers
from fednode.network.info import AccountInfo, NetworkInfo, ValidatorInfo, load_network
from fednode.network.join import JoinedNode, join_network, load_joined_node
from fednode.network.keys import default_account_names, read_key_file
from fednode.network.manager import (
    DEFAULT_CHAIN_ID,
    network_down,
    network_status,
    network_up,
)
from fednode.network.node import StopResult, find_geth
from fednode.network.probe import NodeStatus

__all__ = [
    "DEFAULT_CHAIN_ID",
    "AccountInfo",
    "JoinedNode",
    "NetworkInfo",
    "NodeStatus",
    "StopResult",
    "ValidatorInfo",
    "build_clique_genesis",
    "clique_extra_data",
    "default_account_names",
    "find_geth",
    "join_network",
    "load_joined_node",
    "load_network",
    "network_down",
    "network_status",
    "network_up",
    "parse_clique_signers",
    "read_key_file",
]
