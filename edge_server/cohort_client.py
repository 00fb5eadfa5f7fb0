"""Device: the device side of a secure edge cohort (X25519 keys, shares, masking, reveals).

One :class:`SecureCohortDevice` per device, task and base version walks the rounds of
edge_server.cohort_protocol, one method per round, so a caller (or a test) decides when each
device acts and which one drops out::

    device.advertise(num_examples)      # two X25519 public keys, through the edge
    device.share()                      # Shamir shares of the mask key, encrypted per peer
    device.send_masked(delta)           # (n_i / N_total) * delta, fixed point, pairwise masked
    device.reveal()                     # only if the edge declared someone dropped

:meth:`SecureCohortDevice.run` does all of it, waiting for the cohort between rounds. The
secret keys never leave the device; the edge relays public keys and opaque share boxes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from edge_server.auth import new_nonce
from edge_server.cohort import vector_from_params
from edge_server.cohort_protocol import (
    CohortMessage,
    cohort_message_to_json,
    sign_cohort_message,
)
from edge_server.device_client import EdgeClient
from edge_server.intake import template_of
from edge_server.protocol import SIGNATURE_HEADER
from edge_server.secagg import (
    decrypt_share,
    encrypt_share,
    generate_keypair,
    mask_update,
    quantize,
    split_secret,
)
from fednode.codec import Params, encode_params
from fednode.errors import EdgeError

__all__ = ["SecureCohortDevice", "share_context"]


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
      clock: unix time source for the signed timestamps.
    """

    def __init__(
        self, client: EdgeClient, task_id: int, base_version: int, *,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._client = client
        self._clock = clock
        self.task_id = task_id
        self.base_version = base_version
        self._mask_secret, self._mask_public = generate_keypair()
        self._enc_secret, self._enc_public = generate_keypair()
        self._num_examples = 0
        self.ref: str | None = None

    @property
    def device_id(self) -> str:
        """This device's id."""
        return self._client.identity.device_id

    # ---- rounds ----------------------------------------------------------------------------

    def advertise(self, num_examples: int) -> dict[str, Any]:
        """Round 1: joins the cohort with both public keys and the example count."""
        self._num_examples = num_examples
        return self._post("advertise", {
            "num_examples": num_examples, "mask_public": self._mask_public.hex(),
            "enc_public": self._enc_public.hex(),
        })  # fmt: skip

    def share(self) -> dict[str, Any]:
        """Round 2: Shamir-shares the mask key; share ``x = position + 1`` goes to each peer."""
        cohort = self.cohort()
        size, threshold = cohort["size"], cohort["threshold"]
        parts = split_secret(self._mask_secret, shares=size, threshold=threshold)
        boxes = {}
        for peer in self._peers(cohort):
            peer_id = peer["device_id"]
            context = share_context(self.task_id, self.base_version, self.device_id, peer_id)
            box = encrypt_share(parts[peer["position"] + 1], self._enc_secret,
                                bytes.fromhex(peer["enc_public"]), context=context)  # fmt: skip
            boxes[peer["device_id"]] = base64.b64encode(box).decode("ascii")
        return self._post("shares", {"boxes": boxes})

    def send_masked(self, delta: Params, *, epsilon_micro: int = 0) -> dict[str, Any]:
        """Round 3: sends ``quantize(n_i / N_total * delta) + masks``; never the delta itself."""
        cohort = self.cohort()
        _, params = self._client.fetch_global(self.task_id, self.base_version)
        template = template_of(encode_params(params))
        weight = self._num_examples / cohort["total_examples"]
        fixed = quantize(weight * vector_from_params(delta, template), scale=cohort["scale"])
        me = self._me(cohort)
        peers = {p["position"]: bytes.fromhex(p["mask_public"]) for p in self._peers(cohort)}
        masked = mask_update(me["position"], fixed, self._mask_secret, peers)
        body = base64.b64encode(masked.astype("<u4").tobytes()).decode("ascii")
        return self._post("masked", {"masked": body, "epsilon_micro": epsilon_micro})

    def reveal(self) -> dict[str, Any]:
        """Round 4: decrypts and reveals the shares it holds of every dropped peer's mask key."""
        cohort = self.cohort()
        path = f"/v1/cohorts/{self.task_id}/{self.base_version}/boxes/{self.device_id}"
        boxes = self._client.request("GET", path)["boxes"]
        shares = {}
        for peer in cohort["members"]:
            if peer["dropped"]:
                context = share_context(self.task_id, self.base_version, peer["device_id"],
                                        self.device_id)  # fmt: skip
                box = base64.b64decode(boxes[peer["device_id"]])
                value = decrypt_share(box, self._enc_secret, bytes.fromhex(peer["enc_public"]),
                                      context=context)  # fmt: skip
                shares[peer["device_id"]] = hex(value)
        return self._post("reveal", {"shares": shares})

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
        cohort = self.wait_state("sealed", "unmasking", timeout=timeout)
        if cohort["state"] == "unmasking":
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

    def _me(self, cohort: dict[str, Any]) -> dict[str, Any]:
        for member in cohort["members"]:
            if member["device_id"] == self.device_id:
                return member
        raise EdgeError(409, f"cohort_member: {self.device_id} is not in the cohort")

    def _peers(self, cohort: dict[str, Any]) -> list[dict[str, Any]]:
        return [m for m in cohort["members"] if m["device_id"] != self.device_id]

    def _ref_of(self, answer: dict[str, Any]) -> str:
        return str(answer["member_ref"])
