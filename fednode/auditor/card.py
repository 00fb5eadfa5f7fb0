"""Auditor: builds and signs a provenance card, a self-contained file that proves one model.

The card holds the task spec, the initial model and every contributing update's payload, each
publication / update receipt with its Merkle-Patricia proof against the block's
``receiptsRoot``; for each version the receipt that finalized it (``GlobalModelFinalized``)
and the receipts of the agreeing aggregators' commits; the complete receipts of every block
whose bloom may hold a role change of a signer the card relies on (``card_roles.py``); the
block headers from the Consortium's deployment (or the genesis) on (hash-linked,
Clique-sealed, so ``check-card --genesis`` can anchor them), and the recipe to recompute the
model. It names no contract address and no event definition: the checker takes both from its
own trusted inputs. It is signed with the auditor's account. ``card_check.py`` verifies it
offline. Reads go through the ``Ledger`` protocol and ``NodeReader`` (raw blocks, receipts).
"""

from __future__ import annotations

import json
import time
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from fednode.auditor.card_roles import commit_use, role_blocks, update_uses
from fednode.auditor.node import NodeReader, node_reader
from fednode.auditor.proofs import encode_receipt, prove_receipt
from fednode.auditor.trace import _find_version
from fednode.errors import AuditError

__all__ = ["CARD_FORMAT", "MAX_HEADER_CHAIN", "build_card", "card_message", "sign_card"]

CARD_FORMAT = "fednode-provenance-card/2"
MAX_HEADER_CHAIN = 5_000
"""Below this height a card carries the headers from the genesis; above it, from the
Consortium's deployment block. ``headers_from`` / ``headers_to`` choose the range."""

RECIPE = (
    "v0 = initial.payload (keccak must equal TaskPublished.initialModelDigest); for each version "
    "v in order: payload_v = fednode.aggregator.build.build_global_model(TaskSpec.from_json("
    "task.spec_json), payload_{v-1}, [updates listed in v, ledger order], rule_state=<state of "
    "v-1>); keccak(payload_v) must equal GlobalModelFinalized.digest of v"
)
_HEADER_KEYS = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot",
    "logsBloom", "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData",
    "mixHash", "nonce", "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas",
    "parentBeaconBlockRoot", "hash",
)


def _proof(node: NodeReader, block: int, tx_hash: bytes) -> dict[str, Any]:
    receipts = node.receipts(block)
    index = int(node.receipt_of(block, tx_hash)["transactionIndex"], 16)
    root, proof = prove_receipt(receipts, index)
    if "0x" + root.hex() != node.header(block)["receiptsRoot"]:
        raise AuditError(f"block {block}: rebuilt receipts trie does not match receiptsRoot")
    return {"block": block, "tx_hash": "0x" + bytes(tx_hash).hex(), "tx_index": index,
            "proof": proof}


def _header_range(node: NodeReader, blocks: set[int], deployed: int, start: int | None,
                  stop: int | str | None) -> range:
    """The contiguous blocks to carry: from the genesis (short chains) or the deployment."""
    high = max(blocks)
    if stop == "latest":
        stop = int(node.header_latest()["number"], 16)
    first = start if start is not None else 0 if high < MAX_HEADER_CHAIN else deployed
    last = high if stop is None else int(stop)
    if not 0 <= first <= min(deployed, *blocks) or last < high:
        raise AuditError(f"the header range {first}..{last} must cover the Consortium's "
                         f"deployment (block {deployed}) and the proven blocks up to {high}")
    return range(first, last + 1)


def _headers(node: NodeReader, span: range) -> dict[str, dict]:
    headers = {}
    for number in span:
        raw = node.header(number)
        headers[str(number)] = {k: raw[k] for k in _HEADER_KEYS if raw.get(k) is not None}
    return headers


def _update_entry(node: NodeReader, update: Any) -> dict[str, Any]:
    return {"update_id": update.update_id, "edge": update.edge,
            "base_version": update.base_version, "num_examples": update.num_examples,
            "epsilon_micro": update.epsilon_micro, "digest": "0x" + update.digest.hex(),
            "payload": "0x" + update.payload.hex(),
            **_proof(node, update.block_number, update.tx_hash)}


def _version_entry(node: NodeReader, record: Any, commits: list[Any]) -> dict[str, Any]:
    agreeing = [c for c in commits if c.version == record.version and c.final]
    return {"version": record.version, "digest": "0x" + record.digest.hex(),
            "update_ids": list(record.update_ids), "aggregator": record.aggregator,
            "final": _proof(node, record.block_number, record.tx_hash),
            "commits": [_proof(node, c.block_number, c.tx_hash) for c in agreeing]}


def _role_receipts(node: NodeReader, ledger: Any, headers: dict[str, dict],
                   pairs: set[tuple[bytes, str]], last: int) -> dict[str, list[str]]:
    """Complete receipts of each block that may change a role the card's signers need."""
    blocks = role_blocks(headers, ledger.consortium.address, pairs,
                         ledger.deployment.deploy_block, last)
    return {str(b): ["0x" + encode_receipt(r).hex() for r in node.receipts(b)] for b in blocks}


def _signer_pairs(commits: list[Any], updates: list[Any]) -> set[tuple[bytes, str]]:
    uses = [commit_use(c.aggregator, c.block_number, 0, "commit") for c in commits]
    uses += [use for u in updates for use in update_uses(u.edge, u.block_number, 0, "update")]
    return {(u.role, u.account) for u in uses}


def build_card(
    ledger: Any, digest: str | bytes, *, headers_from: int | None = None,
    headers_to: int | str | None = None,
) -> dict[str, Any]:
    """The unsigned card body for the global model ``digest`` (see the module docstring).

    Args:
      ledger: a Web3Ledger (the card needs raw headers and receipts from its node).
      digest: the global model's digest.
      headers_from: first header carried (default: the genesis if the chain is shorter than
        MAX_HEADER_CHAIN, else the Consortium's deployment block); at most the deployment.
      headers_to: last header carried, a number or "latest" (default: the last proven block);
        carry the block whose hash the auditor will trust.

    Raises:
      AuditError: if the model is unknown, the ledger has no JSON-RPC node behind it, or the
        header range does not cover the deployment and the proven blocks.
    """
    node = node_reader(ledger)
    if node is None:
        raise AuditError("a provenance card needs a ledger on a JSON-RPC node (Web3Ledger)")
    wanted = bytes.fromhex(digest.removeprefix("0x")) if isinstance(digest, str) else digest
    task, records, version = _find_version(ledger, wanted)
    lineage = [r for r in records if r.version <= version]
    listed = {i for r in lineage for i in r.update_ids}
    updates = [u for u in ledger.read_updates(task.task_id) if u.update_id in listed]
    commits = [c for c in ledger.read_commits(task.task_id)
               if c.final and 0 < c.version <= version]
    versions = [_version_entry(node, r, commits) for r in lineage[1:]]
    initial = lineage[0]
    blocks = ({initial.block_number} | {r.block_number for r in lineage}
              | {c.block_number for c in commits} | {u.block_number for u in updates})
    span = _header_range(node, blocks, ledger.deployment.deploy_block, headers_from, headers_to)
    headers = _headers(node, span)
    return {
        "format": CARD_FORMAT, "created": int(time.time()), "chain_id": node.chain_id(),
        "signers": node.signers(),
        "task": {"task_id": task.task_id, "spec_json": task.spec.to_json().decode(),
                 "spec_digest": "0x" + task.spec_digest.hex()},
        "model": {"version": version, "digest": "0x" + wanted.hex()},
        "recipe": RECIPE,
        "initial": {"payload": "0x" + initial.payload.hex(), "digest": "0x" + initial.digest.hex(),
                    **_proof(node, initial.block_number, initial.tx_hash)},
        "versions": versions, "updates": [_update_entry(node, u) for u in updates],
        "role_receipts": _role_receipts(node, ledger, headers, _signer_pairs(commits, updates),
                                        max(blocks)),
        "headers": headers, "header_chain": True,
    }


def card_message(body: dict[str, Any]) -> bytes:
    """keccak-256 of the card body's canonical JSON: what the auditor signs."""
    return keccak(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def sign_card(body: dict[str, Any], account: Any) -> dict[str, Any]:
    """Wraps a card body with the auditor's EIP-191 signature over :func:`card_message`."""
    signed = Account.sign_message(encode_defunct(primitive=card_message(body)),
                                  private_key=account.key)
    return {"card": body, "signature": {"signer": account.address,
                                        "message": "0x" + card_message(body).hex(),
                                        "signature": "0x" + bytes(signed.signature).hex()}}
