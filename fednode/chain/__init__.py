"""Chain: the ledger seam (Protocol, in-memory fake, web3 adapter), contract build and deploy.

What goes on chain and why: see ``fednode/chain/README.md``.
"""

from fednode.chain.compile import compile_contracts, load_artifact, stale_artifacts
from fednode.chain.connection import connect_web3, ensure_poa_middleware
from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    MAX_PAYLOAD_SIZE,
    MAX_TX_SIZE,
    PUBLISHER_ROLE,
)
from fednode.chain.deploy import (
    Deployment,
    EdgeRegistration,
    bind_contract,
    deploy_consortium,
    deploy_contracts,
    end_bootstrap,
    grant_roles,
    read_deployment,
    register_edges,
    write_deployment,
)
from fednode.chain.ledger import Ledger
from fednode.chain.memory_ledger import InMemoryLedger
from fednode.chain.records import GlobalModelCommit, Proposal, ProposalAction, Reputation
from fednode.chain.revert import decode_revert, revert_error_from
from fednode.chain.transactions import SignedTx, TransactionSender
from fednode.chain.web3_ledger import Web3Ledger

__all__ = [
    "AGGREGATOR_ROLE",
    "AUDITOR_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "Deployment",
    "EDGE_ROLE",
    "EdgeRegistration",
    "GlobalModelCommit",
    "InMemoryLedger",
    "Ledger",
    "MAX_PAYLOAD_SIZE",
    "MAX_TX_SIZE",
    "PUBLISHER_ROLE",
    "Proposal",
    "ProposalAction",
    "Reputation",
    "SignedTx",
    "TransactionSender",
    "Web3Ledger",
    "bind_contract",
    "compile_contracts",
    "connect_web3",
    "decode_revert",
    "deploy_consortium",
    "deploy_contracts",
    "end_bootstrap",
    "ensure_poa_middleware",
    "grant_roles",
    "load_artifact",
    "read_deployment",
    "register_edges",
    "revert_error_from",
    "stale_artifacts",
    "write_deployment",
]
