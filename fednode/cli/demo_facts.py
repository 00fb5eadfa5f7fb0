"""Auditor: chain facts for the demo report, read from the validators (blocks, txs, gas, bytes).

``evaluation_facts`` reads the per-site evaluations of every version back from
``EvaluationLedger`` and applies the task's per-site acceptance gate to each version;
``privacy_facts`` reads each site's privacy spend back from the contract that enforces it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from fednode.aggregator.acceptance import describe_rule, version_acceptance
from fednode.chain.ledger import Ledger
from fednode.chain.web3_ledger import Web3Ledger
from fednode.network.info import load_network
from fednode.types import EPSILON_SCALE

__all__ = ["chain_facts", "evaluation_facts", "privacy_facts"]


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


def evaluation_facts(ledger: Ledger, task_id: int, site_of: Mapping[str, str]) -> dict:
    """Per-site metrics of every version, as the edges signed them on chain, and the gate.

    Args:
      ledger: any ledger view (read only).
      task_id: the task whose versions were evaluated.
      site_of: edge address -> site name; these edges must evaluate every version.

    Returns:
      ``{"metric_floor", "rule", "versions": [{"version", "state", "failing_sites", "needed",
      "sites": {site: {"edge", "accuracy", "auc", "num_examples", "block"}}}], "final":
      {...}}``; ``rule`` is the task's acceptance rule in words, ``needed`` how many sites
      had to reach the floor.
    """
    spec = ledger.get_task(task_id).spec
    records = ledger.read_evaluations(task_id)
    versions = []
    for version in sorted({r.version for r in records}):
        gate = version_acceptance(spec, version, records, sites=tuple(site_of))
        sites = {
            site_of.get(r.edge, r.edge): {"edge": r.edge, "accuracy": r.metric, "auc": r.secondary,
                                          "num_examples": r.num_examples, "block": r.block_number}
            for r in records if r.version == version
        }
        versions.append({"version": version, "state": gate.state.value, "sites": sites,
                         "failing_sites": [site_of.get(e, e) for e in gate.decision.failing_sites],
                         "needed": gate.decision.needed})
    final = versions[-1] if versions else None
    return {
        "metric_floor": spec.metric_floor,
        "rule": describe_rule(spec),
        "versions": versions,
        "final": None if final is None
        else {k: final[k] for k in ("version", "state", "failing_sites", "needed")},
    }


def privacy_facts(
    ledger: Ledger, task_id: int, site_of: Mapping[str, str], noise_of: Mapping[str, float]
) -> dict | None:
    """Each site's epsilon as the contract holds it (the sum of its declared increments).

    Args:
      ledger: any ledger view (read only).
      task_id: a task with a privacy budget (None is returned for one without).
      site_of: edge address -> site name.
      noise_of: site name -> the noise multiplier the site trained with (device-local).

    Returns:
      ``{"epsilon_budget", "delta", "accountant", "noise_calibration", "sites": {site: {"edge",
      "epsilon_spent", "noise_multiplier"}}}``.
    """
    spec = ledger.get_task(task_id).spec
    if not spec.epsilon_budget > 0:
        return None
    sites = {name: {"edge": edge, "noise_multiplier": noise_of.get(name),
                    "epsilon_spent": ledger.epsilon_spent(task_id, edge) / EPSILON_SCALE}
             for edge, name in site_of.items()}
    return {"epsilon_budget": spec.epsilon_budget, "delta": spec.delta,
            "accountant": spec.accountant,
            "noise_calibration": spec.noise_calibration, "sites": sites}
