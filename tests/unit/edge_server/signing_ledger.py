"""Edge: a test fake of a ledger that signs, sends and confirms separately, like Web3Ledger.

It wraps an :class:`InMemoryLedger` view for the contract rules and reads, and adds what an
outbox needs of a real node: signed transactions bound to account nonces, a pool that mines
in nonce order on :meth:`SigningLedger.mine`, receipts counted ``confirmations`` deep, geth's
``nonce too low`` for a nonce already used, and gas estimation that refuses a taken slot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from eth_utils import keccak

from fednode.chain.memory_ledger import InMemoryLedger
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError

__all__ = ["FakeSigned", "SigningLedger"]


@dataclass(frozen=True)
class FakeSigned:
    """A signed transaction: its bytes, hash and account nonce."""

    raw: bytes
    tx_hash: bytes
    nonce: int


class SigningLedger:
    """An InMemoryLedger view with the outbox API (``sign_*``, ``send_raw``, receipts)."""

    def __init__(self, inner: InMemoryLedger) -> None:
        self.inner = inner
        self.transactions = self
        self.w3 = SimpleNamespace(eth=self)
        self.account_nonce = 0
        self.sent: list[bytes] = []
        self.fail_sends = 0
        self.lose_answers = 0
        self._actions: dict[bytes, tuple[int, Callable[[], int]]] = {}
        self._pool: dict[int, bytes] = {}
        self._receipts: dict[bytes, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:  # reads, sender, direct submits
        return getattr(self.inner, name)

    # ---- the node ------------------------------------------------------------------------

    @property
    def block_number(self) -> int:
        """The head block (``w3.eth.block_number``)."""
        return self.inner._chain.block  # the in-memory chain's block counter

    def pending_nonce(self) -> int:
        """The account nonce after every pooled transaction (``transactions.pending_nonce``)."""
        return max([self.account_nonce, *(nonce + 1 for nonce in self._pool)])

    def send_raw(self, raw: bytes) -> bytes:
        """Pools ``raw``; ``nonce too low`` once its nonce is used on chain.

        ``fail_sends``: that many sends fail before the node sees them; ``lose_answers``: that
        many are pooled but their answer is lost.
        """
        nonce, _ = self._actions[raw]
        if self.fail_sends:
            self.fail_sends -= 1
            raise ChainError("connection reset by peer")
        if nonce < self.account_nonce:
            raise ChainError(f"nonce too low: next nonce {self.account_nonce}")
        self._pool[nonce] = raw
        self.sent.append(raw)
        if self.lose_answers:
            self.lose_answers -= 1
            raise ChainError("connection reset by peer")
        return keccak(raw)

    def mine(self) -> None:
        """Mines every pooled transaction whose nonce is next, one block each."""
        while self.account_nonce in self._pool:
            raw = self._pool.pop(self.account_nonce)
            _, action = self._actions[raw]
            try:
                receipt: dict[str, Any] = {"status": 1, "id": action()}
            except ContractRevertError as exc:  # mined, reverted
                self.inner._chain.mine(self.inner.sender)
                receipt = {"status": 0, "error": exc}
            self._receipts[keccak(raw)] = {**receipt, "blockNumber": self.block_number}
            self.account_nonce += 1

    def mine_empty(self, blocks: int) -> None:
        """Adds ``blocks`` empty blocks on top."""
        self.inner._chain.block += blocks

    def take_nonce(self) -> None:
        """Another transaction of the account (not an outbox row's) uses the next nonce."""
        self.inner._chain.mine(self.inner.sender)
        self.account_nonce += 1

    def lose_pool(self) -> None:
        """The node forgets every pending transaction (a restart, a reorg)."""
        self._pool.clear()

    def wait_for_receipt(self, tx_hash: bytes, *, confirmations: int, timeout: float) -> Any:
        """The receipt once ``confirmations`` deep; a reverted one raises its error."""
        del timeout
        receipt = self._receipts.get(bytes(tx_hash))
        if receipt is None or self.block_number < receipt["blockNumber"] + confirmations:
            raise ChainTimeoutError("no receipt yet")
        if receipt["status"] != 1:
            raise receipt["error"]
        return receipt

    def update_id_from_receipt(self, receipt: Any) -> int:
        """The update id the receipt's event carries."""
        return int(receipt["id"])

    def evaluation_id_from_receipt(self, receipt: Any) -> int:
        """The evaluation id the receipt's event carries."""
        return int(receipt["id"])

    # ---- signing (gas estimation refuses a taken slot, as the node would) ----------------

    def sign_submit_update(
        self, task_id: int, base_version: int, payload: bytes, *, num_examples: int,
        epsilon_micro: int = 0, nonce: int,
    ) -> FakeSigned:  # fmt: skip
        """Signs ``submitUpdate``."""
        if self.inner.submission_of(task_id, base_version, self.inner.sender):
            raise ContractRevertError("UpdateLedgerDuplicateSubmission")
        return self._sign(nonce, lambda: self.inner.submit_update(
            task_id, base_version, payload, num_examples=num_examples,
            epsilon_micro=epsilon_micro,
        ))  # fmt: skip

    def sign_submit_evaluation(
        self, task_id: int, version: int, *, nonce: int, metric: float, num_examples: int,
        secondary: float | None = None,
    ) -> FakeSigned:  # fmt: skip
        """Signs ``submitEvaluation``."""
        if self.inner.evaluation_of(task_id, version, self.inner.sender):
            raise ContractRevertError("EvaluationLedgerDuplicateEvaluation")
        return self._sign(nonce, lambda: self.inner.submit_evaluation(
            task_id, version, metric=metric, num_examples=num_examples, secondary=secondary,
        ))  # fmt: skip

    def _sign(self, nonce: int, action: Callable[[], int]) -> FakeSigned:
        raw = f"tx:{nonce}:{len(self._actions)}".encode()
        self._actions[raw] = (nonce, action)
        return FakeSigned(raw, keccak(raw), nonce)
