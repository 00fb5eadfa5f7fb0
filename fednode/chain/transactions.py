"""Chain: builds, signs, paces, sends and confirms transactions of one local account.

Works unchanged on anvil and on geth Clique: EIP-1559 fees when the chain has a base fee,
legacy gas price otherwise; gas estimated by the node (a revert there is decoded into
``ContractRevertError`` before anything is sent) with a margin and capped at the block gas
limit; at most ``max_pending`` transactions in flight (geth guarantees an account only 16
pending slots); "committed" means ``confirmations`` blocks on top of the including block,
since Clique blocks are never final. The lower-level pieces (``sign`` for a given nonce,
``send_raw``, ``wait_for_receipt``) serve the edge server's durable outbox.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxReceipt

from fednode.chain.constants import MAX_TX_SIZE
from fednode.chain.revert import revert_error_from
from fednode.errors import ChainError, ChainTimeoutError, ContractRevertError, FednodeValueError

__all__ = ["SignedTx", "TransactionSender"]

logger = logging.getLogger(__name__)

RESEND_INTERVAL_S = 10.0
"""Seconds between byte-identical re-broadcasts of a transaction that has no receipt yet."""
_KNOWN_TX_MESSAGES = ("already known", "known transaction", "already imported")
_FALLBACK_PRIORITY_FEE = 10**9


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction ready for ``send_raw``: raw bytes, hash and the nonce it used."""

    raw: bytes
    tx_hash: bytes
    nonce: int
    sender: str


class TransactionSender:
    """Signs and sends transactions of ``account`` through ``w3``.

    Args:
      w3: a connected Web3 (with ExtraDataToPOAMiddleware for Clique; see ``connect_web3``).
      account: the eth-account LocalAccount that signs.
      confirmations: blocks required on top of the including block before a receipt counts.
      timeout: seconds to wait for a receipt (and its confirmations).
      max_pending: most transactions of this account allowed in flight at once.
      gas_margin: factor applied to the node's gas estimate.
      poll_interval: seconds between polls.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        confirmations: int = 0,
        timeout: float = 120.0,
        max_pending: int = 16,
        gas_margin: float = 1.25,
        poll_interval: float = 0.1,
    ) -> None:
        if confirmations < 0 or max_pending < 1 or gas_margin < 1.0:
            raise FednodeValueError("need confirmations >= 0, max_pending >= 1, gas_margin >= 1")
        self.w3 = w3
        self.account = account
        self.confirmations = confirmations
        self.timeout = timeout
        self.max_pending = max_pending
        self.gas_margin = gas_margin
        self.poll_interval = poll_interval
        self._chain_id: int | None = None

    @property
    def address(self) -> ChecksumAddress:
        """Checksummed address of the signing account."""
        return to_checksum_address(self.account.address)

    @property
    def chain_id(self) -> int:
        """The chain id (asked once, then cached)."""
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    # --- building -------------------------------------------------------------------------

    def estimate_gas(self, to: str | None, data: bytes) -> int:
        """The node's gas estimate times ``gas_margin``, capped at the block gas limit.

        Raises:
          ContractRevertError: if the call would revert (decoded custom error).
        """
        params: dict[str, Any] = {"from": self.address, "data": HexBytes(data)}
        if to is not None:
            params["to"] = to
        try:
            estimate = int(self.w3.eth.estimate_gas(params))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            raise _as_revert(exc) from exc
        limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return min(int(estimate * self.gas_margin) + 10_000, limit)

    def fee_fields(self) -> dict[str, int]:
        """EIP-1559 fee fields when the chain has a base fee, else a legacy ``gasPrice``."""
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        try:
            priority = int(self.w3.eth.max_priority_fee)
        except (Web3RPCError, ValueError):
            priority = _FALLBACK_PRIORITY_FEE
        return {"maxPriorityFeePerGas": priority, "maxFeePerGas": 2 * int(base_fee) + priority}

    def sign(
        self, to: str | None, data: bytes, *, nonce: int | None = None, gas: int | None = None
    ) -> SignedTx:
        """Builds and signs a transaction; estimates gas unless ``gas`` is given.

        Args:
          to: contract address, or None to deploy ``data`` as init code.
          data: calldata (or init code).
          nonce: the nonce to use; the account's pending nonce if None.
          gas: gas limit; estimated (and revert-checked) if None.

        Raises:
          ContractRevertError: if gas estimation reverts.
          FednodeValueError: if the signed transaction exceeds geth's 128 KiB limit.
        """
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": self.pending_nonce() if nonce is None else nonce,
            "gas": self.estimate_gas(to, data) if gas is None else gas,
            "value": 0,
            "data": HexBytes(data),
            **self.fee_fields(),
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        signed = self.account.sign_transaction(tx)
        raw = bytes(signed.raw_transaction)
        if len(raw) > MAX_TX_SIZE:
            raise FednodeValueError(f"signed transaction is {len(raw)} bytes > {MAX_TX_SIZE}")
        return SignedTx(raw=raw, tx_hash=bytes(signed.hash), nonce=tx["nonce"], sender=self.address)

    # --- sending --------------------------------------------------------------------------

    def pending_nonce(self) -> int:
        """Next nonce counting this account's pending transactions."""
        return int(self.w3.eth.get_transaction_count(self.address, "pending"))

    def in_flight(self) -> int:
        """Transactions of this account sent but not yet mined."""
        mined = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        return max(self.pending_nonce() - mined, 0)

    def wait_for_pending_slot(self) -> None:
        """Blocks until fewer than ``max_pending`` transactions of this account are in flight.

        Raises:
          ChainTimeoutError: if no slot frees up within ``timeout``.
        """
        deadline = time.monotonic() + self.timeout
        while self.in_flight() >= self.max_pending:
            if time.monotonic() > deadline:
                raise ChainTimeoutError(f"{self.max_pending} transactions stuck in flight")
            time.sleep(self.poll_interval)

    def send_raw(self, raw: bytes) -> bytes:
        """Sends signed bytes; a node that already has them counts as success.

        Returns:
          The transaction hash.

        Raises:
          ChainError: if the node refuses it, for example because another transaction
            already used its nonce ("nonce too low" while the node does not know this one).
        """
        tx_hash = keccak(raw)
        try:
            return bytes(self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as exc:
            message = str(exc).lower()
            if any(m in message for m in _KNOWN_TX_MESSAGES) or self._is_known(tx_hash):
                return tx_hash
            raise ChainError(f"node refused transaction 0x{tx_hash.hex()}: {exc}") from exc

    def _is_known(self, tx_hash: bytes) -> bool:
        """Whether the node has the transaction (pending or mined), e.g. after 'nonce too low'."""
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def wait_for_receipt(
        self, tx_hash: bytes, *, confirmations: int | None = None, timeout: float | None = None,
        resend: bytes | None = None,
    ) -> TxReceipt:
        """Waits until ``tx_hash`` is mined with ``confirmations`` blocks on top of it.

        With ``resend`` (the signed raw bytes) the transaction is re-broadcast, byte for byte,
        every ``RESEND_INTERVAL_S`` while it has no receipt: a reorg or a rewound fork can drop
        it from every pool, and the same bytes are always safe to send again.

        Raises:
          ContractRevertError: if the transaction was mined but reverted (decoded by replay).
          ChainTimeoutError: if it is not confirmed within ``timeout`` seconds.
        """
        depth = self.confirmations if confirmations is None else confirmations
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        next_resend = time.monotonic() + RESEND_INTERVAL_S
        while True:
            receipt = self._receipt_or_none(tx_hash)
            if receipt is not None and self.w3.eth.block_number >= receipt["blockNumber"] + depth:
                if receipt["status"] != 1:
                    raise self._replay_revert(tx_hash, receipt)
                return receipt
            if time.monotonic() > deadline:
                raise ChainTimeoutError(f"transaction 0x{tx_hash.hex()} not confirmed in time")
            if resend is not None and receipt is None and time.monotonic() >= next_resend:
                self._rebroadcast(resend)
                next_resend = time.monotonic() + RESEND_INTERVAL_S
            time.sleep(self.poll_interval)

    def _rebroadcast(self, raw: bytes) -> None:
        try:
            self.send_raw(raw)
        except ChainError as exc:  # e.g. mined meanwhile: the next receipt poll settles it
            logger.debug("re-broadcast of 0x%s refused: %s", keccak(raw).hex(), exc)

    def transact(self, to: str | None, data: bytes) -> TxReceipt:
        """Paces, signs, sends and waits: the one-call path for non-outbox writers."""
        self.wait_for_pending_slot()
        signed = self.sign(to, data)
        return self.wait_for_receipt(self.send_raw(signed.raw), resend=signed.raw)

    def _receipt_or_none(self, tx_hash: bytes) -> TxReceipt | None:
        try:
            return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def _replay_revert(self, tx_hash: bytes, receipt: TxReceipt) -> ChainError:
        tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        call = {"from": tx["from"], "to": tx.get("to"), "data": tx["input"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError) as exc:
            return _as_revert(exc)
        return ContractRevertError("", None, raw=f"0x{tx_hash.hex()} reverted (not reproducible)")


def _as_revert(exc: ContractLogicError | Web3RPCError) -> ChainError:
    decoded = revert_error_from(exc)
    if decoded is not None:
        return decoded
    return ChainError(f"node refused the call: {exc}")
