"""Chain: reads tasks, updates and global models back from contract storage, logs and calldata.

Storage is the authority on metadata and digests; ``eth_getLogs`` (in block chunks, starting
at the block the contract recorded) finds the transaction that carried each payload; the
payload is decoded from that transaction's calldata and must hash to the stored digest.
Everything is read at one pinned block (``head``) so a read is consistent.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract

from fednode.chain.records import GlobalModelCommit
from fednode.errors import ChainError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord, TaskSpec, TaskState

__all__ = ["LedgerReader"]

_CALLDATA_CACHE_SIZE = 256


class LedgerReader:
    """Reads a TaskRegistry / UpdateLedger pair; see the module docstring for the sources."""

    def __init__(self, registry: Contract, ledger: Contract, *, log_chunk_size: int) -> None:
        self.registry = registry
        self.ledger = ledger
        self.w3 = ledger.w3
        self.log_chunk_size = log_chunk_size
        self._calldata: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    # --- tasks ----------------------------------------------------------------------------

    def task(self, task_id: int, head: int) -> TaskRecord:
        """The task record at block ``head``; its spec decoded from the publishing calldata."""
        stored = self._struct(self.registry, "task", task_id, head=head)
        published = self._publish_args(task_id, stored)
        return TaskRecord(
            task_id=task_id,
            spec=TaskSpec.from_json(published["specJson"]),
            spec_digest=bytes(stored["specDigest"]),
            publisher=to_checksum_address(stored["publisher"]),
            state=TaskState(self.registry.functions.state(task_id).call(block_identifier=head)),
            latest_version=self._latest(task_id, head),
            published_block=int(stored["publishedBlock"]),
        )

    def tasks(self, head: int) -> list[TaskRecord]:
        """Every task at block ``head``, in publication order."""
        count = int(self.registry.functions.taskCount().call(block_identifier=head))
        return [self.task(task_id, head) for task_id in range(1, count + 1)]

    # --- updates --------------------------------------------------------------------------

    def updates(self, task_id: int, base_version: int | None, head: int) -> list[LedgerUpdate]:
        """Updates of a task (optionally on one base version) in update id order."""
        stored_task = self._struct(self.registry, "task", task_id, head=head)
        filters: dict[str, Any] = {"taskId": task_id}
        if base_version is not None:
            filters["baseVersion"] = base_version
        start = int(stored_task["publishedBlock"])
        logs = self._logs(self.ledger.events.UpdateSubmitted, filters, start, head)
        logs.sort(key=lambda log: int(log["args"]["updateId"]))
        if base_version is None:
            expected = int(
                self.ledger.functions.taskUpdateCount(task_id).call(block_identifier=head)
            )
            if len(logs) != expected:
                raise ChainError(
                    f"task {task_id}: {len(logs)} update logs, storage says {expected}"
                )
        return [self._update(log, head) for log in logs]

    def _update(self, log: Any, head: int) -> LedgerUpdate:
        update_id = int(log["args"]["updateId"])
        stored = self._struct(self.ledger, "update", update_id, head=head)
        tx_hash = bytes(log["transactionHash"])
        payload = self._args(tx_hash, self.ledger, "submitUpdate")["payload"]
        self._check_digest(payload, stored["digest"], f"update {update_id}")
        return LedgerUpdate(
            update_id=update_id,
            task_id=int(stored["taskId"]),
            base_version=int(stored["baseVersion"]),
            edge=to_checksum_address(stored["edge"]),
            digest=bytes(stored["digest"]),
            num_examples=int(stored["numExamples"]),
            epsilon_micro=int(stored["epsilonMicro"]),
            payload=payload,
            block_number=int(stored["blockNumber"]),
            tx_hash=tx_hash,
        )

    # --- global models --------------------------------------------------------------------

    def global_models(self, task_id: int, head: int) -> list[GlobalModelRecord]:
        """Version 0 (initial model, by the publisher) to the latest version at ``head``."""
        stored_task = self._struct(self.registry, "task", task_id, head=head)
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
        versions = range(1, self._latest(task_id, head) + 1)
        return [initial, *(self._global_model(task_id, v, head) for v in versions)]

    def _global_model(self, task_id: int, version: int, head: int) -> GlobalModelRecord:
        stored = self._struct(self.ledger, "globalModel", task_id, version, head=head)
        block = int(stored["blockNumber"])
        tx_hash = self._commit_tx(task_id, version, stored["aggregator"], block)
        payload = self._args(tx_hash, self.ledger, "commitGlobalModel")["payload"]
        self._check_digest(payload, stored["digest"], f"task {task_id} version {version}")
        return GlobalModelRecord(
            task_id=task_id,
            version=version,
            digest=bytes(stored["digest"]),
            update_ids=tuple(int(i) for i in stored["updateIds"]),
            aggregator=to_checksum_address(stored["aggregator"]),
            payload=payload,
            block_number=block,
            tx_hash=tx_hash,
        )

    def commits(self, task_id: int, head: int) -> list[GlobalModelCommit]:
        """Every aggregator commit of versions 1..latest+1 (the pending one included)."""
        self._struct(self.registry, "task", task_id, head=head)
        latest = self._latest(task_id, head)
        found: list[GlobalModelCommit] = []
        for version in range(1, latest + 2):
            raw = self.ledger.functions.commits(task_id, version).call(block_identifier=head)
            final_hash = self._final_hash(task_id, version, raw, head) if version <= latest else None
            found.extend(self._commit(task_id, version, entry, final_hash) for entry in raw)
        return found

    def _final_hash(
        self, task_id: int, version: int, raw: list[Any], head: int
    ) -> bytes | None:
        stored = self._struct(self.ledger, "globalModel", task_id, version, head=head)
        for digest, hashed, aggregator, _ in raw:
            if aggregator == stored["aggregator"] and bytes(digest) == bytes(stored["digest"]):
                return bytes(hashed)
        return None

    def _commit(
        self, task_id: int, version: int, entry: Any, final_hash: bytes | None
    ) -> GlobalModelCommit:
        digest, hashed, aggregator, block = entry
        tx_hash = self._commit_tx(task_id, version, aggregator, int(block))
        args = self._args(tx_hash, self.ledger, "commitGlobalModel")
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

    # --- helpers --------------------------------------------------------------------------

    def _commit_tx(self, task_id: int, version: int, aggregator: str, block: int) -> bytes:
        filters = {"taskId": task_id, "version": version, "aggregator": aggregator}
        logs = self._logs(self.ledger.events.GlobalModelCommitted, filters, block, block)
        if len(logs) != 1:
            raise ChainError(f"task {task_id} version {version}: no single commit in block {block}")
        return bytes(logs[0]["transactionHash"])

    def _latest(self, task_id: int, head: int) -> int:
        return int(self.ledger.functions.latestVersion(task_id).call(block_identifier=head))

    def _publish_args(self, task_id: int, stored: dict[str, Any]) -> dict[str, Any]:
        block = int(stored["publishedBlock"])
        logs = self._logs(self.registry.events.TaskPublished, {"taskId": task_id}, block, block)
        if len(logs) != 1:
            raise ChainError(f"task {task_id}: expected one TaskPublished log in block {block}")
        tx_hash = bytes(logs[0]["transactionHash"])
        args = self._args(tx_hash, self.registry, "publishTask")
        self._check_digest(args["specJson"], stored["specDigest"], f"task {task_id} spec")
        return {**args, "txHash": tx_hash}

    def _struct(self, contract: Contract, fn_name: str, *args: Any, head: int) -> dict[str, Any]:
        fn = contract.get_function_by_name(fn_name)(*args)
        names = [c["name"] for c in fn.abi["outputs"][0]["components"]]
        return dict(zip(names, fn.call(block_identifier=head), strict=True))

    def _logs(self, event: Any, filters: dict[str, Any], start: int, stop: int) -> list[Any]:
        logs: list[Any] = []
        for low in range(start, stop + 1, self.log_chunk_size):
            high = min(low + self.log_chunk_size - 1, stop)
            logs.extend(event.get_logs(argument_filters=filters, from_block=low, to_block=high))
        return logs

    def _args(self, tx_hash: bytes, contract: Contract, fn_name: str) -> dict[str, Any]:
        cached = self._calldata.get(tx_hash)
        if cached is not None:
            self._calldata.move_to_end(tx_hash)
            return cached
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        if tx.get("to") is None or to_checksum_address(tx["to"]) != contract.address:
            raise ChainError(f"0x{tx_hash.hex()} does not call {fn_name} directly")
        fn, args = contract.decode_function_input(tx["input"])
        if fn.fn_name != fn_name:
            raise ChainError(f"0x{tx_hash.hex()} calls {fn.fn_name}, not {fn_name}")
        decoded = {k: bytes(v) if isinstance(v, (bytes, bytearray)) else v for k, v in args.items()}
        self._calldata[tx_hash] = decoded
        if len(self._calldata) > _CALLDATA_CACHE_SIZE:
            self._calldata.popitem(last=False)
        return decoded

    @staticmethod
    def _check_digest(payload: bytes, stored: bytes, what: str) -> None:
        if keccak(payload) != bytes(stored):
            raise ChainError(f"{what}: calldata does not hash to the stored digest")
