"""Device: the device side of a secure edge cohort (Bonawitz et al. 2017 double masking).

One :class:`SecureCohortDevice` per device, task and base version walks the rounds of
edge_server.cohort_protocol, one method per round, so a caller (or a test) decides when each
device acts and which one drops out::

    device.advertise(num_examples)      # two X25519 public keys, signed with the device key
    device.share()                      # peers' advertisements checked against the roster;
                                        # Shamir shares of mask key and self-mask seed, per peer
    device.send_masked(delta)           # (n_i / N_total) * delta, fixed point, double masked
    device.check()                      # signs the survivor list (consistency check)
    device.reveal()                     # per peer: seed share (survivor) or key share (dropped)

:meth:`SecureCohortDevice.run` does all of it, waiting for the cohort between rounds. The
secrets never leave the device; the edge relays public keys, signatures and opaque share boxes.
Before each round the device checks what the edge shows (edge_server.cohort_trust) and refuses
with a :class:`CohortRefusedError`, which it also records in :attr:`SecureCohortDevice.refusals`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from edge_server.cohort import CohortConfig, vector_from_params
from edge_server.cohort_protocol import (
    CohortMessage,
    advertisement_bytes,
    cohort_message_to_json,
    sign_cohort_message,
    survivors_bytes,
)
from edge_server.cohort_trust import (
    CohortRefusedError,
    Peer,
    check_consistency,
    check_settings,
    check_survivors,
    parse_roster,
    plan_reveal,
    verified_peers,
)
from edge_server.intake import template_of
from edge_server.secagg import (
    decrypt_shares,
    encrypt_shares,
    generate_keypair,
    generate_seed,
    mask_update,
    quantize,
    split_secret,
)
from fednode.codec import Params, encode_params
from fednode.errors import EdgeError
from fednode.site.device_client import EdgeClient
from fednode.update.envelope import SIGNATURE_HEADER
from fednode.update.signing import new_nonce

__all__ = ["SecureCohortDevice", "share_context"]

logger = logging.getLogger(__name__)


def share_context(task_id: int, base_version: int, sender: str, recipient: str) -> bytes:
    """Authenticated context of one share box (binds it to cohort, sender and recipient).

    Example:
      >>> share_context(1, 0, "a", "b")
      b'fednode-share:1:0:a:b'
    """
    return f"fednode-share:{task_id}:{base_version}:{sender}:{recipient}".encode()


class SecureCohortDevice:
    """One device's part in one secure cohort.

    Args:
      client: the device's EdgeClient (its identity signs every message).
      task_id: the task.
      base_version: the global model version the delta was trained from.
      config: the task's cohort settings as the device trusts them (from the task spec it
        reads itself, ``edge_server.cohort.cohort_config``), never the edge's copy.
      roster: device id -> enrolled Ed25519 public key (hex) of every device this one may share
        secrets with, provisioned by the device's operator (not read from the edge).
      clock: unix time source for the signed timestamps.

    Attributes:
      refusals: every :class:`CohortRefusedError` this device raised, in order.
      revealed: peer -> the kind of share (``"seed"`` or ``"key"``) revealed for it.
    """

    def __init__(
        self, client: EdgeClient, task_id: int, base_version: int, *, config: CohortConfig,
        roster: Mapping[str, str], clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._client = client
        self._clock = clock
        self.task_id = task_id
        self.base_version = base_version
        self._config = config
        self._roster = parse_roster(roster)
        self._mask_secret, self._mask_public = generate_keypair()
        self._enc_secret, self._enc_public = generate_keypair()
        self._seed = generate_seed()
        self._own_seed_share = 0
        self._num_examples = 0
        self._peers: dict[str, Peer] = {}
        self._boxes: dict[str, bytes] = {}
        self._sent = False
        self._signed: list[str] | None = None
        self.refusals: list[CohortRefusedError] = []
        self.revealed: dict[str, str] = {}
        self.ref: str | None = None

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self._client.identity.device_id

    # ---- rounds ----------------------------------------------------------------------------

    def advertise(self, num_examples: int) -> dict[str, Any]:
        """Round 1: joins the cohort with both public keys, signed with the device key."""
        self._num_examples = num_examples
        signed = advertisement_bytes(
            self.task_id, self.base_version, self.device_id, num_examples=num_examples,
            mask_public=self._mask_public, enc_public=self._enc_public,
        )  # fmt: skip
        return self._post("advertise", {
            "num_examples": num_examples, "mask_public": self._mask_public.hex(),
            "enc_public": self._enc_public.hex(),
            "signature": self._client.identity.private_key.sign(signed).hex(),
        })  # fmt: skip

    def share(self) -> dict[str, Any]:
        """Round 2: checks every advertisement against the roster, then Shamir-shares the mask
        key and the self-mask seed; both shares ``x = position + 1`` go to each peer in a box."""
        if self._peers:
            raise self._refusal("cohort_mismatch", "this device shares its secrets once")
        peers = self._guarded(self._verify_cohort, self.cohort())
        threshold, count = self._config.threshold, max(p.position for p in peers.values()) + 1
        key_parts = split_secret(self._mask_secret, shares=count, threshold=threshold)
        seed_parts = split_secret(self._seed, shares=count, threshold=threshold)
        self._peers = peers
        me = peers[self.device_id]
        self._own_seed_share = seed_parts[me.position + 1]
        boxes = {}
        for peer in self._others():
            x = peer.position + 1
            context = share_context(self.task_id, self.base_version, self.device_id,
                                    peer.device_id)  # fmt: skip
            box = encrypt_shares(key_parts[x], seed_parts[x], self._enc_secret, peer.enc_public,
                                 context=context)  # fmt: skip
            boxes[peer.device_id] = base64.b64encode(box).decode("ascii")
        return self._post("shares", {"boxes": boxes})

    def send_masked(self, delta: Params, *, epsilon_micro: int = 0) -> dict[str, Any]:
        """Round 3: sends ``quantize(n_i / N_total * delta)`` plus the self mask and pairwise
        masks towards every peer that sent this device its shares; never the delta itself."""
        if self._sent:
            raise self._refusal("cohort_mismatch", "this device sends one masked input")
        self._guarded(self._keep_boxes)
        cohort = self.cohort()
        _, params = self._client.fetch_global(self.task_id, self.base_version)
        template = template_of(encode_params(params))
        weight = self._num_examples / sum(p.num_examples for p in self._peers.values())
        fixed = quantize(weight * vector_from_params(delta, template), scale=cohort["scale"])
        keys = {p.position: p.mask_public for p in self._others()}
        position = self._peers[self.device_id].position
        masked = mask_update(position, fixed, self._mask_secret, keys, seed=self._seed)
        body = base64.b64encode(masked.astype("<u4").tobytes()).decode("ascii")
        self._sent = True
        return self._post("masked", {"masked": body, "epsilon_micro": epsilon_micro})

    def check(self) -> dict[str, Any]:
        """Round 4 (consistency check): signs the survivor list, once, before any reveal."""
        if not self._sent:
            raise self._refusal("cohort_mismatch", "this device sent no masked input")
        survivors = self._guarded(
            check_survivors, self.cohort(), self._peers, self._config, self.device_id
        )
        if self._signed is not None and self._signed != survivors:
            raise self._refusal("inconsistent_survivors", f"signed {self._signed}, now {survivors}")
        self._signed = survivors
        signed = survivors_bytes(self.task_id, self.base_version, survivors)
        return self._post("check", {
            "survivors": survivors,
            "signature": self._client.identity.private_key.sign(signed).hex(),
        })  # fmt: skip

    def reveal(self) -> dict[str, Any]:
        """Round 5: for each member, the seed share (a survivor in the signed list) or the
        mask-key share (not in it), once at least ``threshold`` survivors signed that list."""
        if self._signed is None:
            raise self._refusal("inconsistent_survivors", "this device signed no survivor list")
        cohort = self.cohort()
        plan = self._guarded(plan_reveal, cohort, self._signed, self._peers, self.revealed)
        self._guarded(check_consistency, cohort, self._signed, self._roster, self._config)
        seeds, keys = {}, {}
        for peer_id, kind in plan.items():
            self.revealed[peer_id] = kind
            key_share, seed_share = self._shares_of(peer_id)
            if kind == "seed":
                seeds[peer_id] = hex(seed_share)
            else:
                keys[peer_id] = hex(key_share)
        return self._post("reveal", {"seed_shares": seeds, "key_shares": keys})

    # ---- driving all rounds --------------------------------------------------------------------

    def cohort(self) -> dict[str, Any]:
        """The cohort as the edge reports it."""
        return self._client.request("GET", f"/v1/cohorts/{self.task_id}/{self.base_version}")

    def wait_state(
        self, *states: str, timeout: float = 60.0, poll_s: float = 0.1
    ) -> dict[str, Any]:
        """Polls the cohort until it is in one of ``states`` (or ``failed``).

        Raises:
          EdgeError: ``(409, "cohort_failed")`` or ``(408, "timeout")``.
        """
        deadline = time.monotonic() + timeout
        while True:
            cohort = self.cohort()
            if cohort["state"] in states:
                return cohort
            if cohort["state"] == "failed":
                raise EdgeError(409, f"cohort_failed: {cohort['error']}")
            if time.monotonic() >= deadline:
                raise EdgeError(408, f"timeout: cohort still {cohort['state']}")
            time.sleep(poll_s)

    def run(
        self, delta: Params, num_examples: int, *, epsilon_micro: int = 0, timeout: float = 60.0
    ) -> str:
        """All rounds; returns this device's reference (``EdgeClient.wait_committed`` takes it)."""
        self.ref = self._ref_of(self.advertise(num_examples))
        self.wait_state("sharing", "masking", timeout=timeout)
        self.share()
        self.wait_state("masking", timeout=timeout)
        self.send_masked(delta, epsilon_micro=epsilon_micro)
        cohort = self.wait_state("checking", "unmasking", "sealed", timeout=timeout)
        if cohort["state"] == "checking":
            self.check()
        if self.wait_state("unmasking", "sealed", timeout=timeout)["state"] == "unmasking":
            if self._signed is not None:
                self.reveal()
            self.wait_state("sealed", timeout=timeout)
        return self.ref

    # ---- helpers -------------------------------------------------------------------------------

    def _post(self, round_name: str, body: dict[str, Any]) -> dict[str, Any]:
        identity = self._client.identity
        message = CohortMessage(
            identity.device_id, self.task_id, self.base_version, round_name, new_nonce(),
            int(self._clock()), body,
        )  # fmt: skip
        signature = sign_cohort_message(identity.private_key, message)
        headers = {
            SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
            "Content-Type": "application/json",
        }
        content = cohort_message_to_json(message)
        return self._client.request("POST", f"/v1/cohorts/{round_name}", content=content,
                                    headers=headers)  # fmt: skip

    def _verify_cohort(self, cohort: dict[str, Any]) -> dict[str, Peer]:
        check_settings(cohort, self._config)
        peers = verified_peers(cohort, self._roster, self._config)
        me = peers.get(self.device_id)
        if me is None or (me.mask_public, me.enc_public, me.num_examples) != (
            self._mask_public, self._enc_public, self._num_examples
        ):
            raise CohortRefusedError("cohort_mismatch", f"{self.device_id}'s own advertisement "
                                     "is missing or altered")  # fmt: skip
        return peers

    def _keep_boxes(self) -> None:
        if not self._peers:
            raise CohortRefusedError("cohort_mismatch", "this device has not shared its secrets")
        path = f"/v1/cohorts/{self.task_id}/{self.base_version}/boxes/{self.device_id}"
        boxes = self._client.request("GET", path)["boxes"]
        missing = sorted(p.device_id for p in self._others() if p.device_id not in boxes)
        if missing:
            raise CohortRefusedError("missing_share", f"no share box from {missing}")
        self._boxes = {p.device_id: base64.b64decode(boxes[p.device_id]) for p in self._others()}

    def _shares_of(self, peer_id: str) -> tuple[int, int]:
        if peer_id == self.device_id:
            return 0, self._own_seed_share
        context = share_context(self.task_id, self.base_version, peer_id, self.device_id)
        peer = self._peers[peer_id]
        try:
            return decrypt_shares(self._boxes[peer_id], self._enc_secret, peer.enc_public,
                                  context=context)  # fmt: skip
        except ValueError as exc:
            raise self._refusal("missing_share", f"{peer_id}'s box: {exc}") from exc

    def _guarded(self, check: Callable[..., Any], *args: Any) -> Any:
        try:
            return check(*args)
        except CohortRefusedError as refusal:
            self._record(refusal)
            raise

    def _refusal(self, reason: str, detail: str) -> CohortRefusedError:
        refusal = CohortRefusedError(reason, detail)
        self._record(refusal)
        return refusal

    def _record(self, refusal: CohortRefusedError) -> None:
        self.refusals.append(refusal)
        logger.warning("device %s refuses cohort %s/%s: %s", self.device_id, self.task_id,
                       self.base_version, refusal)  # fmt: skip

    def _others(self) -> list[Peer]:
        return [p for p in self._peers.values() if p.device_id != self.device_id]

    def _ref_of(self, answer: dict[str, Any]) -> str:
        return str(answer["member_ref"])
