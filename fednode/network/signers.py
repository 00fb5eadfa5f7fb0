"""Chain: keeps the Clique signer set of the validators consistent with the Consortium registry.

The registry is the authority: every registered edge operator that holds EDGE_ROLE has one
validator address, and that set must equal ``clique_getSigners``. ``signer_drift`` compares the
two (pure); ``sync_signers`` proposes the missing additions and removals with
``clique_propose`` on every validator (each seals its vote into its next block; a change passes
once a majority of signers voted) and discards proposals that are no longer needed. Votes are
cast on the validators' IPC sockets (``NetworkInfo.ipc_paths``): a public gateway refuses
``clique_`` calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from fednode.chain.constants import EDGE_ROLE
from fednode.network.node import rpc_call

__all__ = ["SignerDrift", "chain_signers", "registry_signers", "signer_drift", "sync_signers"]


@dataclass(frozen=True)
class SignerDrift:
    """Signers the registry wants but the chain lacks (``missing``) and the reverse (``extra``)."""

    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def clean(self) -> bool:
        """Whether the chain's signer set equals the registry's."""
        return not self.missing and not self.extra


def signer_drift(wanted: Iterable[str], actual: Iterable[str]) -> SignerDrift:
    """Compares the registry's validator set with the chain's signer set.

    Example:
      >>> a, b = "0x" + "11" * 20, "0x" + "22" * 20
      >>> drift = signer_drift([a], [b])
      >>> (len(drift.missing), len(drift.extra), drift.clean)
      (1, 1, False)
    """
    wanted_set = {to_checksum_address(a) for a in wanted}
    actual_set = {to_checksum_address(a) for a in actual}
    missing, extra = sorted(wanted_set - actual_set), sorted(actual_set - wanted_set)
    return SignerDrift(tuple(missing), tuple(extra))


def registry_signers(ledger: object) -> list[str]:
    """Validator addresses of the registered edges that still hold EDGE_ROLE."""
    edges = [e for e in ledger.edges() if ledger.has_role(EDGE_ROLE, e)]  # type: ignore[attr-defined]
    return [to_checksum_address(ledger.validator_of(e)) for e in edges]  # type: ignore[attr-defined]


def chain_signers(url: str) -> list[str]:
    """``clique_getSigners`` at the latest block of the node at ``url`` (its IPC socket)."""
    return [to_checksum_address(a) for a in rpc_call(url, "clique_getSigners", ["latest"])]


def sync_signers(urls: Sequence[str], wanted: Iterable[str]) -> SignerDrift:
    """Proposes every missing signer and every extra one's removal on each validator.

    Returns the drift found before proposing (clean: nothing proposed; stale proposals of
    already-consistent addresses are discarded). Unreachable validators raise NetworkError.
    """
    drift = signer_drift(wanted, chain_signers(urls[0]))
    for url in urls:
        for address in drift.missing:
            rpc_call(url, "clique_propose", [address, True])
        for address in drift.extra:
            rpc_call(url, "clique_propose", [address, False])
        pending = rpc_call(url, "clique_proposals") or {}
        for address in pending:
            checksummed = to_checksum_address(address)
            if checksummed not in drift.missing and checksummed not in drift.extra:
                rpc_call(url, "clique_discard", [checksummed])
    return drift
