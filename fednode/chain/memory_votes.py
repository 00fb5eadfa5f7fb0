"""Chain: InMemoryLedger's aggregator quorum, privacy budget and reputation bookkeeping.

Mirrors ``UpdateLedger._recordCommit`` / ``_finalize`` / ``_spendEpsilon``: a version is final
once ``aggregator_quorum`` commits agree on digest, update ids and rejected ids.
"""

from __future__ import annotations

import dataclasses

from fednode.chain.memory_rules import MemoryChain, revert
from fednode.chain.records import GlobalModelCommit, Reputation, commit_hash, epsilon_budget_micro
from fednode.types import GlobalModelRecord

__all__ = ["record_commit", "spend_epsilon"]


def spend_epsilon(chain: MemoryChain, task_id: int, edge: str, epsilon_micro: int) -> None:
    """Adds ``epsilon_micro`` to ``edge``'s spend; UpdateLedgerZeroPrivacySpend for no spend in
    a DP task (budget > 0), UpdateLedgerPrivacyBudgetExceeded over the budget."""
    budget = epsilon_budget_micro(chain.tasks[task_id - 1].spec)
    if budget != 0 and epsilon_micro == 0:
        raise revert("UpdateLedgerZeroPrivacySpend", taskId=task_id, budget=budget)
    spent = chain.epsilon_spent.get((task_id, edge), 0)
    if budget != 0 and spent + epsilon_micro > budget:
        raise revert(
            "UpdateLedgerPrivacyBudgetExceeded",
            taskId=task_id,
            edge=edge,
            spent=spent,
            requested=epsilon_micro,
            budget=budget,
        )
    chain.epsilon_spent[(task_id, edge)] = spent + epsilon_micro


def record_commit(
    chain: MemoryChain, record: GlobalModelRecord, rejected_ids: tuple[int, ...]
) -> bool:
    """Records one aggregator's commit; finalizes the version on quorum. Returns finality."""
    key = (record.task_id, record.version)
    hashed = commit_hash(record.digest, record.update_ids, rejected_ids)
    existing = chain.commits.setdefault(key, [])
    if existing and existing[0].commit_hash != hashed:
        chain.conflicted.add(key)
    existing.append(
        GlobalModelCommit(
            task_id=record.task_id,
            version=record.version,
            digest=record.digest,
            commit_hash=hashed,
            aggregator=record.aggregator,
            update_ids=record.update_ids,
            rejected_ids=rejected_ids,
            payload=record.payload,
            block_number=record.block_number,
            tx_hash=record.tx_hash,
            final=False,
        )
    )
    agreeing = sum(c.commit_hash == hashed for c in existing)
    if agreeing < chain.tasks[record.task_id - 1].spec.aggregator_quorum:
        return False
    existing[:] = [dataclasses.replace(c, final=c.commit_hash == hashed) for c in existing]
    _finalize(chain, record, rejected_ids)
    return True


def _finalize(chain: MemoryChain, record: GlobalModelRecord, rejected_ids: tuple[int, ...]) -> None:
    chain.globals.setdefault(record.task_id, []).append(record)
    cutoff = chain.cutoffs[(record.task_id, record.version)]
    chain.consumed[record.task_id] = chain.task_ordinal(cutoff)
    for update_id in record.update_ids:
        chain.aggregated_in[update_id] = record.version
        edge = chain.updates[update_id - 1].edge
        _count(chain, edge, accepted=1)
        key = (record.task_id, edge)
        chain.contributions[key] = chain.contributions.get(key, 0) + 1
    for update_id in rejected_ids:
        chain.rejected_in[update_id] = record.version
        _count(chain, chain.updates[update_id - 1].edge, rejected=1)


def _count(chain: MemoryChain, edge: str, *, accepted: int = 0, rejected: int = 0) -> None:
    facts = chain.reputation.get(edge, Reputation())
    chain.reputation[edge] = dataclasses.replace(
        facts, accepted=facts.accepted + accepted, rejected=facts.rejected + rejected
    )
