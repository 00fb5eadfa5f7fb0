"""Device: what a device checks in the edge's cohort view before it acts (pure, no I/O).

The edge relays every cohort message, so a curious edge could substitute keys, shrink the
cohort, or tell one device that a peer dropped after that peer sent its masked input. A device
therefore trusts only:

- its **roster**: the enrolled Ed25519 public keys of the devices it may share secrets with,
  provisioned with the device by its own operator (the same channel that enrolled it), never
  read from the edge. Each peer's key advertisement must carry that peer's signature under its
  roster key (:func:`verified_peers`); the edge can withhold a device, never substitute one, and
  withholding is caught by the cohort's minimum size and threshold;
- its **cohort settings** (size, threshold, min_size) from the task spec it trusts, never the
  edge's copy (:func:`check_settings`);
- the **survivor list it signed** in the consistency round: it reveals, for each peer, the share
  of the self-mask seed if the peer is in that list and of the mask key if not, never both for
  one peer across calls (:func:`plan_reveal`), and only once ``threshold`` survivors signed the
  same list under their roster keys (:func:`check_consistency`).

Every refusal is a :class:`CohortRefusedError` with a named ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_server.cohort import CohortConfig
from edge_server.cohort_protocol import advertisement_bytes, signature_verifies, survivors_bytes
from fednode.errors import FednodeError, FednodeValueError
from fednode.update.signing import public_key_from_hex

__all__ = [
    "CohortRefusedError",
    "Peer",
    "REFUSAL_REASONS",
    "check_consistency",
    "check_settings",
    "check_survivors",
    "parse_roster",
    "plan_reveal",
    "verified_peers",
]

REFUSAL_REASONS = (
    "bad_advertisement",  # a key advertisement not signed by the peer's roster key
    "unknown_peer",  # a cohort member missing from the device's roster
    "cohort_mismatch",  # settings, members or own keys differ from what the device knows
    "cohort_too_small",  # fewer members, survivors or signers than the settings require
    "missing_share",  # a peer's share box for this device is missing
    "inconsistent_survivors",  # the edge's survivor list or flags differ from the signed one
    "double_reveal",  # asked for the other kind of share of a peer already revealed
)


class CohortRefusedError(FednodeError):
    """A device refuses a secure-cohort round; ``reason`` is one of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Peer:
    """A cohort member whose advertisement verified under its roster key."""

    device_id: str
    position: int
    num_examples: int
    mask_public: bytes
    enc_public: bytes


def parse_roster(roster: Mapping[str, str]) -> dict[str, Ed25519PublicKey]:
    """Device id -> enrolled Ed25519 public key, from hex (as ``DeviceIdentity.public_key_hex``).

    Raises:
      FednodeValueError: a key is not 32 bytes of hex.

    Example:
      >>> from fednode.site.device_identity import DeviceIdentity
      >>> me = DeviceIdentity.generate(device_id="a")
      >>> list(parse_roster({"a": me.public_key_hex}))
      ['a']
    """
    if not roster:
        raise FednodeValueError("a secure-cohort device needs a non-empty roster")
    return {str(device): public_key_from_hex(key) for device, key in roster.items()}


def check_settings(cohort: Mapping[str, Any], config: CohortConfig) -> None:
    """Refuses (``cohort_mismatch``) a view whose settings differ from the trusted task spec.

    Example:
      >>> check_settings({"size": 4, "threshold": 3, "min_size": 3},
      ...                CohortConfig(4, True, 3, 3))
    """
    seen = (cohort.get("size"), cohort.get("threshold"), cohort.get("min_size"))
    if seen != (config.size, config.threshold, config.min_size):
        expected = (config.size, config.threshold, config.min_size)
        raise CohortRefusedError("cohort_mismatch", f"size/threshold/min_size {seen}, "
                                 f"the task says {expected}")  # fmt: skip


def verified_peers(
    cohort: Mapping[str, Any], roster: Mapping[str, Ed25519PublicKey], config: CohortConfig
) -> dict[str, Peer]:
    """Every member of the view, each advertisement checked against the roster.

    At most ``size`` members: a device's shares then reach at most ``size - 1`` peers, each
    revealing one kind per peer, so with ``threshold > size / 2`` nobody gathers ``threshold``
    shares of both a device's mask key and its self-mask seed.

    Raises:
      CohortRefusedError: ``unknown_peer``, ``bad_advertisement``, ``cohort_mismatch``
        (positions not ``0..n-1``, or more than ``size`` members) or ``cohort_too_small``
        (fewer than ``min_size`` members).
    """
    peers = {}
    for member in cohort["members"]:
        peer = _verified_peer(cohort, member, roster)
        peers[peer.device_id] = peer
    positions = sorted(p.position for p in peers.values())
    if positions != list(range(len(cohort["members"]))):
        raise CohortRefusedError("cohort_mismatch", "members repeat an id or skip a position")
    if len(peers) > config.size:  # a device's shares reach at most size - 1 peers
        raise CohortRefusedError("cohort_mismatch", f"{len(peers)} members, the task's cohorts "
                                 f"hold {config.size}")  # fmt: skip
    if len(peers) < config.min_size:
        raise CohortRefusedError("cohort_too_small", f"{len(peers)} members, the task needs at "
                                 f"least {config.min_size}")  # fmt: skip
    return peers


def _verified_peer(
    cohort: Mapping[str, Any], member: Mapping[str, Any], roster: Mapping[str, Ed25519PublicKey]
) -> Peer:
    device_id = str(member["device_id"])
    if device_id not in roster:
        raise CohortRefusedError("unknown_peer", f"{device_id} is not in this device's roster")
    try:
        peer = Peer(device_id, int(member["position"]), int(member["num_examples"]),
                    bytes.fromhex(member["mask_public"]), bytes.fromhex(member["enc_public"]))
        signature = bytes.fromhex(member["advert_signature"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CohortRefusedError("bad_advertisement", f"{device_id}: {exc}") from exc
    signed = advertisement_bytes(
        int(cohort["task_id"]), int(cohort["base_version"]), device_id,
        num_examples=peer.num_examples, mask_public=peer.mask_public, enc_public=peer.enc_public,
    )  # fmt: skip
    if not signature_verifies(roster[device_id], signature, signed):
        raise CohortRefusedError("bad_advertisement", f"{device_id}'s keys are not signed by "
                                 "its enrolled key")  # fmt: skip
    return peer


def check_survivors(
    cohort: Mapping[str, Any], peers: Mapping[str, Peer], config: CohortConfig, me: str
) -> list[str]:
    """The survivor list the edge shows, before the device signs it.

    Raises:
      CohortRefusedError: ``inconsistent_survivors`` (not sorted, unknown ids, without this
        device) or ``cohort_too_small`` (fewer than ``max(threshold, min_size)``).
    """
    survivors = cohort.get("survivors")
    if not isinstance(survivors, list) or survivors != sorted(set(survivors)):
        raise CohortRefusedError("inconsistent_survivors", "no sorted survivor list")
    if not set(survivors) <= set(peers) or me not in survivors:
        raise CohortRefusedError("inconsistent_survivors", f"{survivors} is not a list of "
                                 f"members holding {me}")  # fmt: skip
    if len(survivors) < config.min_inputs:
        raise CohortRefusedError("cohort_too_small", f"{len(survivors)} survivors, the task "
                                 f"needs at least {config.min_inputs}")  # fmt: skip
    return list(survivors)


def plan_reveal(
    cohort: Mapping[str, Any], signed: Sequence[str], peers: Mapping[str, Peer],
    revealed: Mapping[str, str],
) -> dict[str, str]:  # fmt: skip
    """Peer -> ``"seed"`` or ``"key"``: which share the device reveals for each member.

    What the edge asks (its survivor list and dropped flags) must match the list the device
    signed, and must never ask for the other kind of a peer already revealed.

    Raises:
      CohortRefusedError: ``double_reveal`` or ``inconsistent_survivors``.

    Example:
      >>> peers = {d: Peer(d, i, 1, b"", b"") for i, d in enumerate("abcd")}
      >>> view = {"survivors": ["a", "b", "c"],
      ...         "members": [{"device_id": d, "dropped": d == "d"} for d in "abcd"]}
      >>> plan_reveal(view, ["a", "b", "c"], peers, {})
      {'a': 'seed', 'b': 'seed', 'c': 'seed', 'd': 'key'}
    """
    shown = cohort.get("survivors") or []
    dropped = {str(m["device_id"]) for m in cohort["members"] if m.get("dropped")}
    asked = {p: "seed" if p in shown and p not in dropped else "key" for p in peers}
    for peer, kind in asked.items():
        if revealed.get(peer, kind) != kind:
            detail = f"{peer}'s {revealed[peer]} share was revealed, the edge asks for {kind}"
            raise CohortRefusedError("double_reveal", detail)
    kept = {p: "seed" if p in signed else "key" for p in peers}
    if asked != kept or list(shown) != list(signed):
        moved = sorted(p for p in peers if asked[p] != kept[p])
        detail = f"the edge's survivors differ from the signed {list(signed)} at {moved or shown}"
        raise CohortRefusedError("inconsistent_survivors", detail)
    return kept


def check_consistency(
    cohort: Mapping[str, Any], signed: Sequence[str], roster: Mapping[str, Ed25519PublicKey],
    config: CohortConfig,
) -> list[str]:  # fmt: skip
    """The survivors that signed the same list (U4) under their roster keys; at least t.

    Raises:
      CohortRefusedError: ``inconsistent_survivors`` (a signature over another list, or a
        signer not in the list) or ``cohort_too_small`` (fewer than ``threshold`` signers).
    """
    message = survivors_bytes(int(cohort["task_id"]), int(cohort["base_version"]), list(signed))
    signers = []
    for member in cohort["members"]:
        device_id, signature = str(member["device_id"]), member.get("check_signature")
        if signature is None:
            continue
        key = roster.get(device_id)
        valid = key is not None and signature_verifies(key, _hex(signature), message)
        if device_id not in signed or not valid:
            raise CohortRefusedError("inconsistent_survivors", f"{device_id} did not sign "
                                     f"the survivor list {list(signed)}")  # fmt: skip
        signers.append(device_id)
    if len(signers) < config.threshold:
        raise CohortRefusedError("cohort_too_small", f"{len(signers)} survivors signed the "
                                 f"list, the task needs {config.threshold}")  # fmt: skip
    return signers


def _hex(value: object) -> bytes:
    try:
        return bytes.fromhex(str(value))
    except ValueError:
        return b""
