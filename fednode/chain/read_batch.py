"""Chain: sends many independent JSON-RPC reads as a few JSON-RPC batches (web3 ``batch_requests``).

The aggregator reads one storage struct and one transaction per update; sent one after the
other, 100 updates cost 200 round trips. :func:`read_in_batches` sends them as batches of at
most ``batch_size`` requests, in order, and returns the formatted results in the same order.
Each result goes through web3's usual formatters, so a revert still raises
``ContractLogicError`` and a missing transaction ``TransactionNotFound``.

geth answers at most 1,000 requests and 25 MB per batch (``--rpc.batch-request-limit``,
``--rpc.batch-response-max-size``); the default of 32 requests keeps a batch of transactions
with 124 KiB payloads (248 KB as hex) near 8 MB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from web3 import Web3
from web3.providers.base import JSONBaseProvider

from fednode.errors import FednodeValueError

__all__ = ["BATCH_SIZE", "read_in_batches"]

BATCH_SIZE = 32
"""Requests per JSON-RPC batch (see the module docstring for geth's limits)."""


def read_in_batches(
    w3: Web3, reads: Sequence[Callable[[], Any]], *, batch_size: int = BATCH_SIZE
) -> list[Any]:
    """Runs ``reads`` (each a zero-argument web3 read) as JSON-RPC batches, results in order.

    Each read is a call such as ``lambda: w3.eth.get_transaction(h)`` or
    ``lambda: fn.call(block_identifier=head)``: inside a batch web3 queues it instead of
    sending it. Providers without batch support (``make_batch_request``) get the reads one at
    a time, with the same results.

    Args:
      w3: the connection.
      reads: zero-argument callables, each making exactly one web3 request.
      batch_size: most requests per batch (>= 1).

    Returns:
      The formatted result of each read, in the order of ``reads``.

    Raises:
      FednodeValueError: if ``batch_size`` < 1.

    Example:
      >>> read_in_batches(Web3(), [])
      []
      >>> read_in_batches(Web3(), [lambda: 1], batch_size=0)
      Traceback (most recent call last):
      ...
      fednode.errors.FednodeValueError: batch_size must be >= 1, got 0
    """
    if batch_size < 1:
        raise FednodeValueError(f"batch_size must be >= 1, got {batch_size}")
    if not reads:
        return []
    if len(reads) == 1 or not _supports_batches(w3):  # a batch of one is one more round trip
        return [read() for read in reads]
    results: list[Any] = []
    for start in range(0, len(reads), batch_size):
        with w3.batch_requests() as batch:
            for read in reads[start : start + batch_size]:
                batch.add(read())
            results.extend(batch.execute())
    return results


def _supports_batches(w3: Web3) -> bool:
    """Whether the provider overrides ``JSONBaseProvider.make_batch_request`` (which raises)."""
    implementation = getattr(type(w3.provider), "make_batch_request", None)
    return implementation is not None and implementation is not JSONBaseProvider.make_batch_request
