"""fednode: a blockchain-anchored federated learning consortium for healthcare.

The pipeline, one package per stage::

    device (fednode.device, pure JAX)  --signed delta-->  edge (edge_server)
        --signed tx, payload in calldata-->  chain (fednode.chain, contracts/)
        -->  aggregator (fednode.aggregator)  --global model-->  chain
        -->  auditor (fednode.auditor): recomputes every global model from the ledger alone

``fednode.codec`` holds the one canonical parameter encoding and the one digest.
"""

__version__ = "0.1.0"
