"""Chain: Web3Ledger, the Ledger seam on a real chain (geth Clique, anvil, any JSON-RPC node).

Writes go through ``TransactionSender`` (local signing, pacing, confirmations, decoded reverts).
Reads combine three sources, all pinned to one block: contract storage (the authority on
metadata and digests), ``eth_getLogs`` over block ranges (to find the transaction of each
update or version) and the transaction's calldata (the payload itself, checked against the
stored keccak-256 digest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxReceipt

from fednode.chain.connection import connect_web3, ensure_poa_middleware
from fednode.chain.constants import check_uint
from fednode.chain.deploy import Deployment, bind_contract
from fednode.chain.ledger_reads import LedgerReader
from fednode.chain.pinned_read import read_pinned
from fednode.chain.records import epsilon_budget_micro
from fednode.chain.revert import revert_error_from
from fednode.chain.transactions import SignedTx, TransactionSender
from fednode.chain.web3_evaluations import Web3Evaluations
from fednode.chain.web3_governance import Web3Governance
from fednode.errors import ChainError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskRecord, TaskSpec, TaskState

__all__ = ["Web3Ledger"]

_T = TypeVar("_T")


class Web3Ledger(Web3Governance, Web3Evaluations):
    """The Ledger on a JSON-RPC chain, acting as ``account``.

    Args:
      w3: connected Web3; the Clique POA middleware is added if missing.
      deployment: contract addresses (see ``fednode.chain.deploy``).
      account: the eth-account LocalAccount that signs this ledger's writes.
      confirmations: blocks on top of the including block before a write counts.
      timeout: seconds to wait for a write to be confirmed.
      max_pending: most transactions of ``account`` in flight (geth guarantees 16 slots).
      log_chunk_size: blocks per ``eth_getLogs`` request.
      finality_depth: blocks below the head after which a final global version and its
        commits are cached by this ledger (re-validated by block hash on every read, see
        ``fednode.chain.read_cache``); default ``max(confirmations, 2)``.
    """

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        account: LocalAccount,
        *,
        confirmations: int = 0,
        timeout: float = 120.0,
        max_pending: int = 16,
        log_chunk_size: int = 5_000,
        finality_depth: int | None = None,
    ) -> None:
        self.w3 = ensure_poa_middleware(w3)
        self.deployment = deployment
        self.transactions = TransactionSender(
            w3, account, confirmations=confirmations, timeout=timeout, max_pending=max_pending
        )
        self.consortium = bind_contract(w3, deployment, "Consortium")
        self.registry = bind_contract(w3, deployment, "TaskRegistry")
        self.ledger = bind_contract(w3, deployment, "UpdateLedger")
        self.evaluations = bind_contract(w3, deployment, "EvaluationLedger")
        depth = max(confirmations, 2) if finality_depth is None else finality_depth
        self._reader = LedgerReader(
            self.registry, self.ledger, log_chunk_size=log_chunk_size, finality_depth=depth
        )
        chain_id = self.transactions.chain_id
        if chain_id != deployment.chain_id:
            raise ChainError(f"node is on chain {chain_id}, deployment on {deployment.chain_id}")

    @classmethod
    def connect(
        cls, rpc_url: str, deployment: Deployment, account: LocalAccount, **options: Any
    ) -> Web3Ledger:
        """A Web3Ledger over HTTP JSON-RPC at ``rpc_url``; ``options`` as for the constructor."""
        return cls(connect_web3(rpc_url), deployment, account, **options)

    @property
    def sender(self) -> str:
        """Checksummed address this ledger signs with."""
        return self.transactions.address

    def pending_writes(self) -> int:
        """Transactions of this account sent but not mined yet (pending minus mined nonce)."""
        return self.transactions.in_flight()

    def deployment_scope(self) -> tuple[int, str]:
        """This deployment's chain id and its UpdateLedger's checksummed address."""
        return int(self.deployment.chain_id), str(self.deployment.address("UpdateLedger"))

    # --- writes ---------------------------------------------------------------------------

    def publish_task(self, spec: TaskSpec, initial_payload: bytes) -> int:
        """Publishes a task with its initial model; returns the task id."""
        params = (
            check_uint("rounds", spec.rounds, 32),
            check_uint("min_updates", spec.min_updates, 32),
            check_uint("max_staleness", spec.max_staleness, 32),
            check_uint("deadline", spec.deadline, 64),
            check_uint("epsilon_budget", epsilon_budget_micro(spec), 64),
            check_uint("aggregator_quorum", spec.aggregator_quorum, 32),
            check_uint("max_examples", spec.max_examples, 64),
        )
        args = [spec.to_json(), params, bytes(initial_payload)]
        receipt = self._transact(self.registry, "publishTask", args)
        return int(self._event(self.registry, "TaskPublished", receipt)["taskId"])

    def cancel_task(self, task_id: int) -> None:
        """Cancels a task (its publisher only)."""
        self._transact(self.registry, "cancelTask", [task_id])

    def submit_update(
        self,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int = 0,
    ) -> int:
        """Submits one update and waits for it; returns its update id."""
        data = self.encode_submit_update(
            task_id, base_version, payload, num_examples=num_examples, epsilon_micro=epsilon_micro
        )
        receipt = self.transactions.transact(self.ledger.address, data)
        return self.update_id_from_receipt(receipt)

    def commit_global_model(
        self,
        task_id: int,
        version: int,
        payload: bytes,
        update_ids: Sequence[int],
        *,
        rejected_ids: Sequence[int] = (),
    ) -> GlobalModelRecord:
        """Commits global model ``version`` aggregated from ``update_ids`` (ledger order).

        ``rejected_ids`` are the updates the robust filter dropped (they count against their
        edges' reputation once the version is final). With an aggregator quorum k > 1 the
        version is final only after k agreeing commits; the record describes this commit.
        """
        check_uint("version", version, 32)
        ids = [int(i) for i in update_ids]
        rejected = [int(i) for i in rejected_ids]
        receipt = self._transact(
            self.ledger, "commitGlobalModel", [task_id, version, ids, rejected, bytes(payload)]
        )
        event = self._event(self.ledger, "GlobalModelCommitted", receipt)
        return GlobalModelRecord(
            task_id=task_id,
            version=version,
            digest=bytes(event["digest"]),
            update_ids=tuple(ids),
            aggregator=to_checksum_address(event["aggregator"]),
            payload=bytes(payload),
            block_number=int(receipt["blockNumber"]),
            tx_hash=bytes(receipt["transactionHash"]),
        )

    # --- outbox pieces (edge server) ------------------------------------------------------

    def encode_submit_update(
        self,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int = 0,
    ) -> bytes:
        """Calldata of ``submitUpdate`` for these arguments."""
        args = [
            check_uint("task_id", task_id, 256),
            check_uint("base_version", base_version, 32),
            check_uint("num_examples", num_examples, 64),
            check_uint("epsilon_micro", epsilon_micro, 64),
            bytes(payload),
        ]
        return bytes(HexBytes(self.ledger.encode_abi("submitUpdate", args)))

    def sign_submit_update(
        self,
        task_id: int,
        base_version: int,
        payload: bytes,
        *,
        num_examples: int,
        epsilon_micro: int = 0,
        nonce: int,
        gas: int | None = None,
    ) -> SignedTx:
        """Builds and signs (does not send) a ``submitUpdate`` transaction with ``nonce``.

        Without ``gas`` the node estimates it, which also checks every contract rule now:
        a refusal raises ``ContractRevertError`` before anything is stored or sent.
        """
        data = self.encode_submit_update(
            task_id, base_version, payload, num_examples=num_examples, epsilon_micro=epsilon_micro
        )
        return self.transactions.sign(self.ledger.address, data, nonce=nonce, gas=gas)

    def send_raw(self, raw: bytes) -> bytes:
        """Sends signed transaction bytes (idempotent); returns the transaction hash."""
        return self.transactions.send_raw(raw)

    def wait_for_receipt(
        self, tx_hash: bytes, *, confirmations: int | None = None, timeout: float | None = None
    ) -> TxReceipt:
        """Waits for a confirmed receipt; a reverted transaction raises ContractRevertError."""
        return self.transactions.wait_for_receipt(
            tx_hash, confirmations=confirmations, timeout=timeout
        )

    def update_id_from_receipt(self, receipt: TxReceipt) -> int:
        """The update id assigned by the ``UpdateSubmitted`` event in ``receipt``."""
        return int(self._event(self.ledger, "UpdateSubmitted", receipt)["updateId"])

    # --- reads ----------------------------------------------------------------------------

    def get_task(self, task_id: int) -> TaskRecord:
        """Reads a task, its derived state and its latest global version."""
        return self._read(lambda head: self._reader.task(task_id, head))

    def list_tasks(self) -> list[TaskRecord]:
        """All tasks, in publication order."""
        return self._read(self._reader.tasks)

    def read_updates(self, task_id: int, *, base_version: int | None = None) -> list[LedgerUpdate]:
        """Updates of a task in ledger order, payloads read back from calldata and verified."""
        return self._read(lambda head: self._reader.updates(task_id, base_version, head))

    def read_global_models(self, task_id: int) -> list[GlobalModelRecord]:
        """All committed versions of a task, version 0 (the initial model) first."""
        return self._read(lambda head: self._reader.global_models(task_id, head))

    def latest_version(self, task_id: int) -> int:
        """The latest final global version of a task."""
        return int(self._call(self.ledger.functions.latestVersion(task_id)))

    def task_state(self, task_id: int) -> TaskState:
        """The derived lifecycle state of a task."""
        return TaskState(self._call(self.registry.functions.state(task_id)))

    def submission_of(self, task_id: int, base_version: int, edge: str) -> int:
        """The update id ``edge`` submitted on ``base_version`` of a task (0 if none)."""
        edge = to_checksum_address(edge)
        return int(self._call(self.ledger.functions.submissionOf(task_id, base_version, edge)))

    def update_count(self) -> int:
        """Number of updates on the ledger, over all tasks."""
        return int(self._call(self.ledger.functions.updateCount()))

    def has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role`` in the consortium."""
        return bool(
            self._call(self.consortium.functions.hasRole(role, to_checksum_address(account)))
        )

    def validator_of(self, edge: str) -> str:
        """The validator address registered for ``edge`` (zero address if none)."""
        return str(self._call(self.consortium.functions.validatorOf(to_checksum_address(edge))))

    def edges(self) -> list[str]:
        """Registered edges in registration order."""
        return [to_checksum_address(e) for e in self._call(self.consortium.functions.edges())]

    # --- helpers --------------------------------------------------------------------------

    def _transact(self, contract: Contract, fn_name: str, args: list[Any]) -> TxReceipt:
        data = bytes(HexBytes(contract.encode_abi(fn_name, args)))
        return self.transactions.transact(contract.address, data)

    def _event(self, contract: Contract, name: str, receipt: TxReceipt) -> Any:
        events = contract.events[name]().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError(f"no {name} event in 0x{bytes(receipt['transactionHash']).hex()}")
        return events[0]["args"]

    def _call(self, fn: Any) -> Any:
        try:
            return fn.call()
        except (ContractLogicError, Web3RPCError) as exc:
            raise revert_error_from(exc) or ChainError(str(exc)) from exc

    def _read(self, read: Callable[[int], _T]) -> _T:
        try:
            return read_pinned(lambda: self.w3.eth.block_number, read)
        except (ContractLogicError, Web3RPCError) as exc:
            raise revert_error_from(exc) or ChainError(str(exc)) from exc
