"""Chain: opens a Web3Ledger for one named consortium account of a network folder.

A network folder (``fednode network up --dir D``) holds ``network.json`` (validators, accounts),
``keys/<account>.key`` and, after ``fednode deploy``, ``deployment.json``. Every command that talks
to the chain goes through :func:`open_ledger`, so the wiring lives in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from eth_account import Account

from fednode.chain.deploy import Deployment, read_deployment
from fednode.chain.web3_ledger import Web3Ledger
from fednode.errors import ChainError
from fednode.network.info import NetworkInfo, load_network
from fednode.network.keys import read_key_file

__all__ = ["DEPLOYMENT_FILE", "deployment_path", "load_account", "open_ledger", "rpc_url"]

DEPLOYMENT_FILE = "deployment.json"


def deployment_path(network_dir: str | os.PathLike[str]) -> Path:
    """Where ``fednode deploy`` writes the contract addresses of a network folder."""
    return Path(network_dir) / DEPLOYMENT_FILE


def rpc_url(info: NetworkInfo, node: int) -> str:
    """The JSON-RPC URL of validator ``node`` (0-based); raises ChainError when out of range."""
    if not 0 <= node < len(info.validators):
        raise ChainError(f"node {node} out of range: the network has {len(info.validators)}")
    return info.validators[node].http_url


def load_account(info: NetworkInfo, name: str):
    """The eth-account LocalAccount of a named member account (admin, edge-1, ...)."""
    return Account.from_key(read_key_file(info.key_file(name)))


def open_ledger(
    network_dir: str | os.PathLike[str],
    account_name: str,
    *,
    node: int = 0,
    confirmations: int = 0,
    deployment: Deployment | None = None,
) -> Web3Ledger:
    """A Web3Ledger acting as ``account_name``, talking to validator ``node``.

    Raises:
      ChainError: if the folder has no deployment yet or the node is unknown.
      NetworkError: if the folder is not a network folder or lacks the account.
    """
    info = load_network(network_dir)
    if deployment is None:
        path = deployment_path(network_dir)
        if not path.exists():
            raise ChainError(f"{path} not found: run `fednode deploy --network-dir {network_dir}`")
        deployment = read_deployment(path)
    return Web3Ledger.connect(
        rpc_url(info, node), deployment, load_account(info, account_name),
        confirmations=confirmations,
    )
