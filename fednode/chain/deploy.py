"""Chain: deploys and wires Consortium, TaskRegistry, UpdateLedger, EvaluationLedger; saves them.

A deployment JSON is ``{"chain_id", "contracts": {name: address}, "deploy_block"}``; every
other stage finds the contracts through it. Only this module (through scripts) and the edge
server hold private keys. :func:`deploy_consortium` is the whole set-up (deploy, grant the
founding roles, register the founding edges) and, unless told to keep it, ends the bootstrap:
from then on the admin has no power left and everything changes by vote of the edge operators.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from fednode.chain.compile import CONTRACT_NAMES, load_artifact
from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_VOTING_PERIOD,
    PUBLISHER_ROLE,
)
from fednode.chain.transactions import TransactionSender
from fednode.errors import ChainError, FednodeValueError

__all__ = [
    "DEFAULT_VOTING_PERIOD",
    "Deployment",
    "EdgeRegistration",
    "bind_contract",
    "deploy_consortium",
    "deploy_contracts",
    "end_bootstrap",
    "grant_roles",
    "read_deployment",
    "register_edges",
    "write_deployment",
]


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live: chain id, ``{name: checksummed address}``, first block."""

    chain_id: int
    contracts: dict[str, str] = field(default_factory=dict)
    deploy_block: int = 0

    def address(self, name: str) -> str:
        """The address of contract ``name``; raises ChainError if it is not deployed."""
        try:
            return self.contracts[name]
        except KeyError as exc:
            raise ChainError(f"deployment has no {name} contract") from exc

    def to_json(self) -> dict[str, Any]:
        """The JSON body written to disk."""
        return {
            "chain_id": self.chain_id,
            "contracts": dict(sorted(self.contracts.items())),
            "deploy_block": self.deploy_block,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Deployment:
        """Parses and validates a deployment body."""
        try:
            contracts = {str(k): str(to_checksum_address(v)) for k, v in body["contracts"].items()}
            deployment = cls(int(body["chain_id"]), contracts, int(body["deploy_block"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FednodeValueError(f"malformed deployment JSON: {exc}") from exc
        missing = sorted(set(CONTRACT_NAMES) - set(contracts))
        if missing:
            raise FednodeValueError(f"deployment JSON lacks contracts {missing}")
        return deployment


class EdgeRegistration(NamedTuple):
    """An edge operator's account, its validator (Clique signer) address and a display name."""

    edge: str
    validator: str
    name: str


def write_deployment(deployment: Deployment, path: Path) -> None:
    """Writes the deployment JSON (creating parent folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(deployment.to_json(), indent=2) + "\n")


def read_deployment(path: Path) -> Deployment:
    """Reads a deployment JSON written by ``write_deployment``."""
    try:
        return Deployment.from_json(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise FednodeValueError(f"cannot read deployment {path}: {exc}") from exc


def bind_contract(w3: Web3, deployment: Deployment, name: str) -> Contract:
    """A web3 contract object for ``name`` at its deployed address, with the committed ABI."""
    address = to_checksum_address(deployment.address(name))
    return w3.eth.contract(address=address, abi=load_artifact(name)["abi"])


def _deploy(sender: TransactionSender, name: str, *args: Any) -> tuple[str, int]:
    artifact = load_artifact(name)
    factory = sender.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    data = bytes.fromhex(factory.constructor(*args).data_in_transaction[2:])
    receipt = sender.transact(None, data)
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"deploying {name} created no contract")
    return str(to_checksum_address(address)), int(receipt["blockNumber"])


def deploy_contracts(
    w3: Web3,
    account: LocalAccount,
    *,
    admin_transfer_delay: int = 0,
    voting_period: int = DEFAULT_VOTING_PERIOD,
    confirmations: int = 0,
) -> Deployment:
    """Deploys the four contracts with ``account`` as admin and wires registry -> ledger.

    EvaluationLedger reads final versions from UpdateLedger (constructor argument), so it
    needs no wiring transaction. The consortium is left bootstrapping (see
    :func:`deploy_consortium` for the whole set-up).

    Args:
      w3: connected Web3.
      account: deployer; becomes the consortium's DEFAULT_ADMIN_ROLE holder.
      admin_transfer_delay: seconds a two-step admin transfer must wait (bootstrap only).
      voting_period: seconds a proposal stays open for votes (> 0).
      confirmations: blocks to wait on top of each deployment transaction.

    Returns:
      The deployment (addresses, chain id, block of the first deployment).

    Raises:
      FednodeValueError: ``voting_period`` is not positive.
    """
    if voting_period <= 0:
        raise FednodeValueError(f"voting period must be > 0 seconds, got {voting_period}")
    sender = TransactionSender(w3, account, confirmations=confirmations)
    consortium, first_block = _deploy(
        sender, "Consortium", admin_transfer_delay, voting_period
    )
    registry, _ = _deploy(sender, "TaskRegistry", consortium)
    ledger, _ = _deploy(sender, "UpdateLedger", consortium, registry)
    evaluations, _ = _deploy(sender, "EvaluationLedger", consortium, ledger)
    contracts = {
        "Consortium": consortium,
        "EvaluationLedger": evaluations,
        "TaskRegistry": registry,
        "UpdateLedger": ledger,
    }
    deployment = Deployment(chain_id=sender.chain_id, contracts=contracts, deploy_block=first_block)
    set_ledger = bind_contract(w3, deployment, "TaskRegistry").encode_abi("setLedger", [ledger])
    sender.transact(registry, bytes.fromhex(set_ledger[2:]))
    return deployment


def grant_roles(
    w3: Web3,
    deployment: Deployment,
    admin: LocalAccount,
    *,
    publishers: Iterable[str] = (),
    aggregators: Iterable[str] = (),
    auditors: Iterable[str] = (),
) -> None:
    """Grants PUBLISHER_ROLE, AGGREGATOR_ROLE and AUDITOR_ROLE (skipping current holders)."""
    consortium = bind_contract(w3, deployment, "Consortium")
    sender = TransactionSender(w3, admin)
    for role, accounts in (
        (PUBLISHER_ROLE, publishers),
        (AGGREGATOR_ROLE, aggregators),
        (AUDITOR_ROLE, auditors),
    ):
        for account in accounts:
            if not consortium.functions.hasRole(role, to_checksum_address(account)).call():
                data = consortium.encode_abi("grantRole", [role, to_checksum_address(account)])
                sender.transact(consortium.address, bytes.fromhex(data[2:]))


def register_edges(
    w3: Web3, deployment: Deployment, admin: LocalAccount, edges: Sequence[EdgeRegistration]
) -> None:
    """Registers each edge with its validator (grants EDGE_ROLE); skips registered edges."""
    consortium = bind_contract(w3, deployment, "Consortium")
    sender = TransactionSender(w3, admin)
    for edge, validator, name in edges:
        edge = to_checksum_address(edge)
        if int(consortium.functions.validatorOf(edge).call(), 16) != 0:
            continue
        data = consortium.encode_abi("registerEdge", [edge, to_checksum_address(validator), name])
        sender.transact(consortium.address, bytes.fromhex(data[2:]))


def end_bootstrap(
    w3: Web3, deployment: Deployment, admin: LocalAccount, *, confirmations: int = 0
) -> None:
    """Ends the bootstrap phase: from then on roles, quorum and admin change only by vote."""
    consortium = bind_contract(w3, deployment, "Consortium")
    sender = TransactionSender(w3, admin, confirmations=confirmations)
    sender.transact(consortium.address, bytes.fromhex(consortium.encode_abi("endBootstrap")[2:]))


def deploy_consortium(
    w3: Web3,
    admin: LocalAccount,
    *,
    publishers: Sequence[str] = (),
    aggregators: Sequence[str] = (),
    auditors: Sequence[str] = (),
    edges: Sequence[EdgeRegistration] = (),
    keep_bootstrap: bool = False,
    voting_period: int = DEFAULT_VOTING_PERIOD,
    confirmations: int = 0,
) -> Deployment:
    """Deploys the contracts, grants the founding roles, registers the founding edges and,
    unless ``keep_bootstrap``, ends the bootstrap.

    Args:
      w3: connected Web3.
      admin: deployer and consortium admin (powerless once the bootstrap has ended).
      publishers: addresses given PUBLISHER_ROLE.
      aggregators: addresses given AGGREGATOR_ROLE.
      auditors: addresses given AUDITOR_ROLE.
      edges: edge operators to register with their validators (EDGE_ROLE).
      keep_bootstrap: leave the admin able to grant, revoke and register (for a set-up that
        is not finished yet; end it later with :func:`end_bootstrap`).
      voting_period: seconds a proposal stays open for votes.
      confirmations: blocks to wait on top of each deployment transaction.

    Returns:
      The deployment.
    """
    deployment = deploy_contracts(
        w3, admin, voting_period=voting_period, confirmations=confirmations
    )
    if publishers or aggregators or auditors:
        grant_roles(
            w3, deployment, admin,
            publishers=publishers, aggregators=aggregators, auditors=auditors,
        )  # fmt: skip
    if edges:
        register_edges(w3, deployment, admin, edges)
    if not keep_bootstrap:
        end_bootstrap(w3, deployment, admin, confirmations=confirmations)
    return deployment
