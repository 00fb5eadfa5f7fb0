"""fednode: a blockchain-anchored federated learning consortium for healthcare.

The pipeline, one package per stage::

    site (fednode.site: the per-site loop and edge client; trains with fednode.device, pure JAX)
        --signed delta (fednode.update)-->  edge (edge_server)
        --signed tx, payload in calldata-->  chain (fednode.chain, contracts/)
        -->  aggregator (fednode.aggregator)  --global model-->  chain
        -->  auditor (fednode.auditor): recomputes every global model from the ledger alone

``fednode.codec`` holds the one canonical parameter encoding and the one digest;
``fednode.update`` the update's envelope, signatures, packing and the one check every stage runs.
"""

__version__ = "0.1.0"
