"""Chain: reads global versions and aggregator commits, keeping the final ones in a cache.

The half of ``LedgerReader`` that reads ``globalModel`` / ``commits`` storage, finds the
commit transactions with one ``GlobalModelCommitted`` log scan and decodes their calldata.
A version final at least ``finality_depth`` blocks below the head never changes unless a reorg
replaces its block (the contract accepts commits only for ``latest + 1``), so its record and its
commits go into the reader's ``FinalityCache`` (see ``fednode.chain.read_cache``): a later read
re-validates one block hash and reads only the versions it has not seen, instead of every
version's storage, logs and calldata again.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from fednode.chain.read_batch import read_in_batches
from fednode.chain.read_cache import CachedRead, FinalityCache
from fednode.chain.records import GlobalModelCommit
from fednode.errors import ChainError
from fednode.types import GlobalModelRecord

__all__ = ["CachedVersionReads"]


class CachedVersionReads:
    """Version reads of ``LedgerReader``, which mixes this class in and provides the helpers."""

    w3: Web3
    ledger: Contract
    registry: Contract
    final: FinalityCache

    if TYPE_CHECKING:  # provided by LedgerReader

        def _latest(self, task_id: int, head: int) -> int: ...

        def _publish_args(self, task_id: int, stored: dict[str, Any]) -> dict[str, Any]: ...

        def _struct(
            self, contract: Contract, fn_name: str, *args: Any, head: int
        ) -> dict[str, Any]: ...

        def _structs(
            self, contract: Contract, fn_name: str, rows: Sequence[tuple[Any, ...]], *, head: int
        ) -> list[dict[str, Any]]: ...

        def _logs(
            self, event: Any, filters: dict[str, Any], start: int, stop: int
        ) -> list[Any]: ...

        def _args_many(
            self, tx_hashes: Sequence[bytes], contract: Contract, fn_name: str
        ) -> list[dict[str, Any]]: ...

        def _block_hashes(self, numbers: Sequence[int]) -> list[bytes | None]: ...

        @staticmethod
        def _check_digest(payload: bytes, stored: bytes, what: str) -> None: ...

    def global_models(self, task_id: int, head: int) -> list[GlobalModelRecord]:
        """Version 0 (initial model, by the publisher) to the latest version at ``head``."""
        read = self.final.open(head, self._block_hashes)
        stored_task = self._struct(self.registry, "task", task_id, head=head)
        versions = range(self._latest(task_id, head) + 1)
        found: dict[int, GlobalModelRecord] = {}
        for v in versions:
            if (cached := read.get(("model", task_id, v))) is not None:
                found[v] = cached
        if 0 not in found:
            found[0] = self._initial_model(task_id, stored_task)
        later = [v for v in versions if v not in found]
        rows = [(task_id, v) for v in later]
        stored = self._structs(self.ledger, "globalModel", rows, head=head)
        wanted = [
            (v, s["aggregator"], int(s["blockNumber"])) for v, s in zip(later, stored, strict=True)
        ]
        tx_hashes = self._commit_txs(task_id, wanted)
        calldata = self._args_many(tx_hashes, self.ledger, "commitGlobalModel")
        for row in zip(later, stored, tx_hashes, calldata, strict=True):
            found[row[0]] = self._global_model(task_id, *row)
        for record in found.values():
            read.keep(("model", task_id, record.version), record, block=record.block_number)
        read.close()
        return [found[v] for v in versions]

    def _initial_model(self, task_id: int, stored_task: dict[str, Any]) -> GlobalModelRecord:
        published = self._publish_args(task_id, stored_task)
        initial = GlobalModelRecord(
            task_id=task_id,
            version=0,
            digest=bytes(stored_task["initialModelDigest"]),
            update_ids=(),
            aggregator=to_checksum_address(stored_task["publisher"]),
            payload=published["initialModel"],
            block_number=int(stored_task["publishedBlock"]),
            tx_hash=published["txHash"],
        )
        self._check_digest(initial.payload, initial.digest, f"task {task_id} initial model")
        return initial

    def _global_model(
        self,
        task_id: int,
        version: int,
        stored: dict[str, Any],
        tx_hash: bytes,
        args: dict[str, Any],
    ) -> GlobalModelRecord:
        self._check_digest(args["payload"], stored["digest"], f"task {task_id} version {version}")
        return GlobalModelRecord(
            task_id=task_id,
            version=version,
            digest=bytes(stored["digest"]),
            update_ids=tuple(int(i) for i in stored["updateIds"]),
            aggregator=to_checksum_address(stored["aggregator"]),
            payload=args["payload"],
            block_number=int(stored["blockNumber"]),
            tx_hash=tx_hash,
        )

    def commits(self, task_id: int, head: int) -> list[GlobalModelCommit]:
        """Every aggregator commit of versions 1..latest+1 (the pending one included)."""
        read = self.final.open(head, self._block_hashes)
        self._struct(self.registry, "task", task_id, head=head)
        latest = self._latest(task_id, head)
        cached = {v: read.get(("commits", task_id, v)) for v in range(1, latest + 1)}
        todo = [v for v, commits in cached.items() if commits is None] + [latest + 1]
        fresh = self._read_commits(task_id, todo, latest, head, read)
        read.close()
        return [c for v in range(1, latest + 2) for c in (cached.get(v) or fresh[v])]

    def _read_commits(
        self, task_id: int, versions: list[int], latest: int, head: int, read: CachedRead
    ) -> dict[int, list[GlobalModelCommit]]:
        calls = [self.ledger.functions.commits(task_id, v) for v in versions]
        raws = read_in_batches(self.w3, [partial(fn.call, block_identifier=head) for fn in calls])
        finals = [v for v in versions if v <= latest]
        rows = [(task_id, v) for v in finals]
        structs = self._structs(self.ledger, "globalModel", rows, head=head)
        stored = dict(zip(finals, structs, strict=True))
        final_blocks = {v: int(s["blockNumber"]) for v, s in stored.items()}
        raw_of = dict(zip(versions, raws, strict=True))
        final_hashes = {v: self._final_hash(raw_of[v], s) for v, s in stored.items()}
        entries = [(v, entry) for v, raw in zip(versions, raws, strict=True) for entry in raw]
        tx_hashes = self._commit_txs(task_id, [(v, e[2], int(e[3])) for v, e in entries])
        calldata = self._args_many(tx_hashes, self.ledger, "commitGlobalModel")
        found: dict[int, list[GlobalModelCommit]] = {v: [] for v in versions}
        for (v, entry), tx_hash, args in zip(entries, tx_hashes, calldata, strict=True):
            commit = self._commit(task_id, v, entry, tx_hash, args, final_hashes.get(v))
            found[v].append(commit)
        for v, block in final_blocks.items():
            read.keep(("commits", task_id, v), found[v], block=block)
        return found

    @staticmethod
    def _final_hash(raw: list[Any], stored: dict[str, Any]) -> bytes | None:
        for digest, hashed, aggregator, _ in raw:
            if aggregator == stored["aggregator"] and bytes(digest) == bytes(stored["digest"]):
                return bytes(hashed)
        return None

    def _commit(
        self,
        task_id: int,
        version: int,
        entry: Any,
        tx_hash: bytes,
        args: dict[str, Any],
        final_hash: bytes | None,
    ) -> GlobalModelCommit:
        digest, hashed, aggregator, block = entry
        self._check_digest(args["payload"], digest, f"task {task_id} version {version} commit")
        return GlobalModelCommit(
            task_id=task_id,
            version=version,
            digest=bytes(digest),
            commit_hash=bytes(hashed),
            aggregator=to_checksum_address(aggregator),
            update_ids=tuple(int(i) for i in args["updateIds"]),
            rejected_ids=tuple(int(i) for i in args["rejectedIds"]),
            payload=args["payload"],
            block_number=int(block),
            tx_hash=tx_hash,
            final=final_hash is not None and bytes(hashed) == final_hash,
        )

    def _commit_txs(self, task_id: int, wanted: Sequence[tuple[int, str, int]]) -> list[bytes]:
        """The commit transaction of each (version, aggregator, block), from one log scan."""
        if not wanted:
            return []
        blocks = [block for *_, block in wanted]
        event = self.ledger.events.GlobalModelCommitted
        found: dict[tuple[int, str, int], list[bytes]] = {}
        for log in self._logs(event, {"taskId": task_id}, min(blocks), max(blocks)):
            args = log["args"]
            aggregator = to_checksum_address(args["aggregator"])
            key = (int(args["version"]), aggregator, int(log["blockNumber"]))
            found.setdefault(key, []).append(bytes(log["transactionHash"]))
        tx_hashes = []
        for version, aggregator, block in wanted:
            matches = found.get((version, to_checksum_address(aggregator), block), [])
            if len(matches) != 1:
                raise ChainError(
                    f"task {task_id} version {version}: no single commit in block {block}"
                )
            tx_hashes.append(matches[0])
        return tx_hashes
