"""Auditor: chain facts for the demo report, read from the validators (blocks, txs, gas, bytes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from fednode.chain.web3_ledger import Web3Ledger
from fednode.network.info import load_network

__all__ = ["chain_facts"]


def _block_totals(ledger: Web3Ledger, first: int, last: int) -> tuple[int, int, Counter]:
    transactions, gas, sealers = 0, 0, Counter()
    for number in range(first, last + 1):
        block = ledger.w3.eth.get_block(number)
        transactions += len(block["transactions"])
        gas += int(block["gasUsed"])
        sealer = ledger.w3.provider.make_request("clique_getSigner", [hex(number)])
        sealers[str(sealer.get("result", "?"))] += 1
    return transactions, gas, sealers


def chain_facts(ledger: Web3Ledger, network_dir: Path, task_ids: Sequence[int]) -> dict:
    """Counts what the consortium chain holds since the contracts were deployed.

    Returns validators, Clique signers, blocks, transactions, gas used, blocks sealed per
    signer, and the update / global model payload bytes of the given tasks.
    """
    info = load_network(network_dir)
    head = ledger.w3.eth.block_number
    first = ledger.deployment.deploy_block
    transactions, gas, sealers = _block_totals(ledger, first, head)
    update_bytes = sum(len(u.payload) for t in task_ids for u in ledger.read_updates(t))
    global_bytes = sum(len(g.payload) for t in task_ids for g in ledger.read_global_models(t))
    signers = ledger.w3.provider.make_request("clique_getSigners", ["latest"]).get("result", [])
    return {
        "chain_id": info.chain_id,
        "validators": len(info.validators),
        "clique_signers": signers,
        "first_block": first,
        "head_block": head,
        "blocks": head - first + 1,
        "transactions": transactions,
        "gas_used": gas,
        "blocks_sealed_by": dict(sealers),
        "payload_bytes": update_bytes + global_bytes,
        "update_payload_bytes": update_bytes,
        "global_model_payload_bytes": global_bytes,
        "updates": sum(len(ledger.read_updates(t)) for t in task_ids),
    }
