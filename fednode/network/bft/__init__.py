"""Consensus: the CometBFT engine: CometBFT finalizes, geth 1.17 executes (Engine API).

``bft_network_up`` lays out and starts a local consortium whose validators each run geth 1.17
(post-merge genesis, Engine API on loopback with a JWT secret) and ``fednode-bft`` (a CometBFT
v0.38 node with the ABCI++ application in-process, built from ``bft/``). ``network.json`` keeps
the Clique engine's format, so every tool reaches the chain the same way.
"""

from fednode.network.bft.manager import (
    bft_network_create,
    bft_network_down,
    bft_network_status,
    bft_network_up,
    is_bft_network,
    load_bft,
)

__all__ = [
    "bft_network_create",
    "bft_network_down",
    "bft_network_status",
    "bft_network_up",
    "is_bft_network",
    "load_bft",
]
