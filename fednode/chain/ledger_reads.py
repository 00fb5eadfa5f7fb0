"""Chain: reads tasks, updates and global models back from contract storage, logs and calldata.

Storage is the authority on metadata and digests; ``eth_getLogs`` (in block chunks, starting
at the block the contract recorded) finds the transaction that carried each payload; the
payload is decoded from that transaction's calldata and must hash to the stored digest.
Everything is read at one pinned block (``head``) so a read is consistent.

Reads of many records go out as JSON-RPC batches (``read_batch``): the storage structs of all
updates in one batch, their transactions in another, instead of two round trips per update.
Global versions and their commits that are final ``finality_depth`` blocks below the head are
kept in a ``FinalityCache`` and not read again while the chain under them stays the same.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import BlockNotFound

from fednode.chain.cached_versions import CachedVersionReads
from fednode.chain.read_batch import read_in_batches
from fednode.chain.read_cache import FinalityCache
from fednode.errors import ChainError
from fednode.types import LedgerUpdate, TaskRecord, TaskSpec, TaskState

__all__ = ["LedgerReader"]

_CALLDATA_CACHE_SIZE = 256


class LedgerReader(CachedVersionReads):
    """Reads a TaskRegistry / UpdateLedger pair; see the module docstring for the sources."""

    def __init__(
        self, registry: Contract, ledger: Contract, *, log_chunk_size: int, finality_depth: int
    ) -> None:
        self.registry = registry
        self.ledger = ledger
        self.w3 = ledger.w3
        self.log_chunk_size = log_chunk_size
        self.final = FinalityCache(finality_depth)
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
        ids = [int(log["args"]["updateId"]) for log in logs]
        tx_hashes = [bytes(log["transactionHash"]) for log in logs]
        stored = self._structs(self.ledger, "update", [(i,) for i in ids], head=head)
        calldata = self._args_many(tx_hashes, self.ledger, "submitUpdate")
        return [self._update(*row) for row in zip(ids, stored, tx_hashes, calldata, strict=True)]

    def _update(
        self, update_id: int, stored: dict[str, Any], tx_hash: bytes, args: dict[str, Any]
    ) -> LedgerUpdate:
        payload = args["payload"]
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

    # --- helpers --------------------------------------------------------------------------

    def _latest(self, task_id: int, head: int) -> int:
        return int(self.ledger.functions.latestVersion(task_id).call(block_identifier=head))

    def _publish_args(self, task_id: int, stored: dict[str, Any]) -> dict[str, Any]:
        block = int(stored["publishedBlock"])
        logs = self._logs(self.registry.events.TaskPublished, {"taskId": task_id}, block, block)
        if len(logs) != 1:
            raise ChainError(f"task {task_id}: expected one TaskPublished log in block {block}")
        tx_hash = bytes(logs[0]["transactionHash"])
        args = self._args_many([tx_hash], self.registry, "publishTask")[0]
        self._check_digest(args["specJson"], stored["specDigest"], f"task {task_id} spec")
        return {**args, "txHash": tx_hash}

    def _struct(self, contract: Contract, fn_name: str, *args: Any, head: int) -> dict[str, Any]:
        return self._structs(contract, fn_name, [args], head=head)[0]

    def _structs(
        self, contract: Contract, fn_name: str, rows: Sequence[tuple[Any, ...]], *, head: int
    ) -> list[dict[str, Any]]:
        """One struct-returning view called with each row of arguments, in one batch."""
        fns = [contract.get_function_by_name(fn_name)(*args) for args in rows]
        if not fns:
            return []
        names = [c["name"] for c in fns[0].abi["outputs"][0]["components"]]
        values = read_in_batches(self.w3, [partial(fn.call, block_identifier=head) for fn in fns])
        return [dict(zip(names, value, strict=True)) for value in values]

    def _logs(self, event: Any, filters: dict[str, Any], start: int, stop: int) -> list[Any]:
        logs: list[Any] = []
        for low in range(start, stop + 1, self.log_chunk_size):
            high = min(low + self.log_chunk_size - 1, stop)
            logs.extend(event.get_logs(argument_filters=filters, from_block=low, to_block=high))
        return logs

    def _args_many(
        self, tx_hashes: Sequence[bytes], contract: Contract, fn_name: str
    ) -> list[dict[str, Any]]:
        """Decoded calldata of each transaction; the ones not remembered fetched in batches."""
        found = {h: self._calldata[h] for h in tx_hashes if h in self._calldata}
        missing = [h for h in dict.fromkeys(tx_hashes) if h not in found]
        reads = [partial(self.w3.eth.get_transaction, HexBytes(h)) for h in missing]
        for tx_hash, tx in zip(missing, read_in_batches(self.w3, reads), strict=True):
            found[tx_hash] = self._decode(tx_hash, tx, contract, fn_name)
        for tx_hash, decoded in found.items():
            self._calldata[tx_hash] = decoded
            self._calldata.move_to_end(tx_hash)
        while len(self._calldata) > _CALLDATA_CACHE_SIZE:
            self._calldata.popitem(last=False)
        return [found[h] for h in tx_hashes]

    @staticmethod
    def _decode(tx_hash: bytes, tx: Any, contract: Contract, fn_name: str) -> dict[str, Any]:
        if tx.get("to") is None or to_checksum_address(tx["to"]) != contract.address:
            raise ChainError(f"0x{tx_hash.hex()} does not call {fn_name} directly")
        fn, args = contract.decode_function_input(tx["input"])
        if fn.fn_name != fn_name:
            raise ChainError(f"0x{tx_hash.hex()} calls {fn.fn_name}, not {fn_name}")
        return {k: bytes(v) if isinstance(v, (bytes, bytearray)) else v for k, v in args.items()}

    def _block_hashes(self, numbers: Sequence[int]) -> list[bytes | None]:
        """Canonical hashes of ``numbers`` (all ``None`` if one is missing: a reorg under us)."""
        reads = [partial(self.w3.eth.get_block, n) for n in numbers]
        try:
            return [bytes(block["hash"]) for block in read_in_batches(self.w3, reads)]
        except BlockNotFound:
            return [None] * len(numbers)

    @staticmethod
    def _check_digest(payload: bytes, stored: bytes, what: str) -> None:
        if keccak(payload) != bytes(stored):
            raise ChainError(f"{what}: calldata does not hash to the stored digest")
