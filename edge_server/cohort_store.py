"""Edge: the durable state machine of edge cohorts, in the edge's SQLite store.

Every device message is written, with its nonce, in one store transaction before the device
gets its answer; the message that completes a cohort also writes the cohort's aggregate into
the ``updates`` table (status ``accepted``) in that same transaction, so the durable outbox
(edge_server.outbox) submits it exactly once. States::

    plain:  collecting --(N deltas)--> sealed
    secure: advertising --(N signed keys)--> sharing --(N share sets)--> masking
            masking --(N masked inputs)--> checking
            masking --(deadline, >= max(t, min_size) inputs: the rest are dropped)--> checking
            checking --(every survivor signed the survivor list)--> unmasking
            checking --(deadline, >= max(t, min_size) signatures)--> unmasking
            unmasking --(t survivors revealed)--> sealed
            sharing / masking / checking / unmasking (too few) --(deadline)--> failed

The survivor list is fixed when masking closes and never changes; a survivor reveals, per
peer, the share of the self-mask seed (peer in the list) or of the mask key (peer not in it).
In secure mode the edge stores only public keys and the devices' signatures, encrypted shares,
masked vectors, the revealed shares and the sum: never an individual delta.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from edge_server.cohort import plain_mean_payload, secure_mean_payload, vector_size
from edge_server.cohort_store_records import CohortTask, CohortView, Member, read_cohort
from edge_server.cohort_store_sql import (
    insert_member,
    masked_vectors,
    open_cohort,
    rebuild_secret,
    require_state,
    revealer_count,
    set_member,
    set_state,
    set_survivors,
)
from edge_server.intake import check_delta
from edge_server.secagg import unmask_sum
from edge_server.store import EdgeStore
from fednode.errors import UpdateRejectedError
from fednode.update.envelope import UpdateEnvelope

__all__ = ["CohortStore", "CohortTask", "CohortView", "Member"]

COHORT_SOURCE = "cohort"


class CohortStore:
    """Cohort tables of an :class:`EdgeStore`; every method is one durable transaction.

    Example:
      >>> CohortStore(EdgeStore(":memory:")).view(1, 0) is None
      True
    """

    def __init__(self, store: EdgeStore) -> None:
        self._store = store

    # ---- reads ---------------------------------------------------------------------------

    def view(self, task_id: int, base_version: int) -> CohortView | None:
        """The cohort of a task and base version, or None when none was started."""
        with self._store.transaction() as db:
            return read_cohort(db, task_id, base_version)

    def member_by_ref(self, ref: str) -> tuple[CohortView, Member] | None:
        """The cohort and member a device's reference points to, or None."""
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT task_id, base_version, device_id FROM cohort_members WHERE ref = ?", (ref,)
            ).fetchone()
            if row is None:
                return None
            view = read_cohort(db, int(row[0]), int(row[1]))
        assert view is not None
        return view, view.member(str(row[2]))

    def boxes_for(self, task_id: int, base_version: int, recipient: str) -> dict[str, bytes]:
        """Encrypted shares addressed to ``recipient``, by sender."""
        with self._store.transaction() as db:
            rows = db.execute(
                "SELECT sender, box FROM cohort_shares WHERE task_id = ? AND base_version = ?"
                " AND recipient = ?",
                (task_id, base_version, recipient),
            ).fetchall()
        return {str(sender): bytes(box) for sender, box in rows}

    # ---- plain cohorts -------------------------------------------------------------------

    def add_plain(self, task: CohortTask, envelope: UpdateEnvelope) -> tuple[str, int | None]:
        """Stores one validated delta; the N-th also stores the cohort's aggregate update.

        Returns:
          ``(member_ref, local_id)``; ``local_id`` of the aggregate row when this sealed it.
        """
        with self._store.transaction() as db:
            self._store.add_nonce(envelope.device_id, envelope.nonce)
            view = open_cohort(db, task, "collecting")
            require_state(view, "collecting")
            ref = insert_member(db, task, view, envelope.device_id, envelope.num_examples)
            db.execute(
                "UPDATE cohort_members SET payload = ?, epsilon_micro = ? WHERE ref = ?",
                (envelope.payload, envelope.epsilon_micro, ref),
            )
            if len(view.members) + 1 < task.config.size:
                return ref, None
            return ref, self._seal_plain(db, task)

    def _seal_plain(self, db: sqlite3.Connection, task: CohortTask) -> int | None:
        rows = db.execute(
            "SELECT payload, num_examples, epsilon_micro FROM cohort_members"
            " WHERE task_id = ? AND base_version = ? ORDER BY position",
            (task.task_id, task.base_version),
        ).fetchall()
        payload = plain_mean_payload(
            [bytes(r[0]) for r in rows], [int(r[1]) for r in rows], task.template
        )
        totals = (sum(int(r[1]) for r in rows), max(int(r[2]) for r in rows))
        return self._seal(db, task, payload, *totals)

    # ---- secure cohorts ------------------------------------------------------------------

    def advertise(
        self, task: CohortTask, device_id: str, nonce: str, *, num_examples: int,
        mask_public: bytes, enc_public: bytes, signature: bytes, now: float,
    ) -> str:  # fmt: skip
        """Registers a device's two signed X25519 public keys; the N-th moves it to sharing."""
        with self._store.transaction() as db:
            self._store.add_nonce(device_id, nonce)
            view = open_cohort(db, task, "advertising")
            require_state(view, "advertising")
            ref = insert_member(db, task, view, device_id, num_examples)
            db.execute(
                "UPDATE cohort_members SET mask_public = ?, enc_public = ?, advert_sig = ?"
                " WHERE ref = ?",
                (mask_public, enc_public, signature, ref),
            )
            if len(view.members) + 1 == task.config.size:
                set_state(db, task, "sharing", deadline=now + task.config.timeout_s)
            return ref

    def add_boxes(
        self, task: CohortTask, device_id: str, nonce: str, boxes: Mapping[str, bytes], now: float
    ) -> None:
        """Stores a device's encrypted shares, one per peer; the last moves it to masking."""
        with self._store.transaction() as db:
            self._store.add_nonce(device_id, nonce)
            view = self._expired(db, task, now)
            require_state(view, "sharing")
            member = view.member(device_id)
            peers = {m.device_id for m in view.members} - {device_id}
            if member.shared or set(boxes) != peers:
                raise UpdateRejectedError("cohort_member", "send one share box per peer, once")
            db.executemany(
                "INSERT INTO cohort_shares (task_id, base_version, sender, recipient, box)"
                " VALUES (?,?,?,?,?)",
                [(task.task_id, task.base_version, device_id, p, b) for p, b in boxes.items()],
            )
            set_member(db, task, device_id, "shared = 1")
            if sum(m.shared for m in view.members) + 1 == view.size:
                set_state(db, task, "masking", deadline=now + task.config.timeout_s)

    def add_masked(
        self, task: CohortTask, device_id: str, nonce: str, masked: bytes, *,
        epsilon_micro: int, now: float,
    ) -> None:  # fmt: skip
        """Stores a masked input; the last one closes masking (survivors fixed: checking)."""
        with self._store.transaction() as db:
            self._store.add_nonce(device_id, nonce)
            view = self._expired(db, task, now)
            member = view.member(device_id)
            if member.dropped:
                raise UpdateRejectedError("dropped", f"{device_id} was declared dropped")
            require_state(view, "masking")
            if member.has_masked or len(masked) != 4 * vector_size(task.template):
                raise UpdateRejectedError("bad_cohort_input", "one masked vector of model size")
            db.execute(
                "UPDATE cohort_members SET masked = ?, epsilon_micro = ?"
                " WHERE task_id = ? AND base_version = ? AND device_id = ?",
                (masked, epsilon_micro, task.task_id, task.base_version, device_id),
            )
            if sum(m.has_masked for m in view.members) + 1 == view.size:
                self._close_masking(db, task, now)

    def add_check(
        self, task: CohortTask, device_id: str, nonce: str, survivors: list[str],
        signature: bytes, now: float,
    ) -> None:  # fmt: skip
        """Stores a survivor's signature over the survivor list (signature checked by caller);
        the last survivor's moves the cohort to unmasking."""
        with self._store.transaction() as db:
            self._store.add_nonce(device_id, nonce)
            view = self._expired(db, task, now)
            require_state(view, "checking")
            member = view.member(device_id)
            if view.survivors is None or device_id not in view.survivors:
                raise UpdateRejectedError("cohort_member", f"{device_id} is not a survivor")
            if tuple(survivors) != view.survivors or member.check_sig is not None:
                raise UpdateRejectedError("cohort_member", "sign the cohort's survivor list, once")
            set_member(db, task, device_id, "check_sig = ?", signature)
            if sum(m.check_sig is not None for m in view.members) + 1 == len(view.survivors):
                set_state(db, task, "unmasking", deadline=now + task.config.timeout_s)

    def add_reveal(
        self, task: CohortTask, device_id: str, nonce: str, *, seed_shares: Mapping[str, int],
        key_shares: Mapping[str, int], now: float,
    ) -> int | None:  # fmt: skip
        """Stores a survivor's revealed shares: the seed share of every survivor and the key
        share of every dropped member. The ``threshold``-th reveal unmasks and seals the sum;
        a reveal that comes after the seal is not needed and not stored.
        """
        with self._store.transaction() as db:
            self._store.add_nonce(device_id, nonce)
            view = self._expired(db, task, now)
            member = view.member(device_id)
            if member.check_sig is None:
                raise UpdateRejectedError("cohort_member", f"{device_id} did not sign the check")
            if view.state == "sealed":
                return None
            require_state(view, "unmasking")
            survivors = set(view.survivors or ())
            dropped = {m.device_id for m in view.members} - survivors
            if set(seed_shares) != survivors or set(key_shares) != dropped:
                raise UpdateRejectedError("cohort_member", "reveal a seed share per survivor "
                                          "and a key share per dropped member")  # fmt: skip
            rows = [("seed", d, v) for d, v in seed_shares.items()]
            rows += [("key", d, v) for d, v in key_shares.items()]
            db.executemany(
                "INSERT INTO cohort_reveals"
                " (task_id, base_version, revealer, peer, kind, x, share) VALUES (?,?,?,?,?,?,?)",
                [(task.task_id, task.base_version, device_id, peer, kind, member.position + 1,
                  hex(value)) for kind, peer, value in rows],
            )  # fmt: skip
            if revealer_count(db, task) < view.threshold:
                return None
            return self._seal_secure(db, task)

    def expire(self, task: CohortTask, now: float) -> CohortView:
        """Applies a passed deadline (drops the silent devices, or fails the cohort)."""
        with self._store.transaction() as db:
            return self._expired(db, task, now)

    def _expired(self, db: sqlite3.Connection, task: CohortTask, now: float) -> CohortView:
        view = read_cohort(db, task.task_id, task.base_version)
        if view is None:
            raise UpdateRejectedError("cohort_state", "no cohort for this task and base yet")
        if view.deadline is None or now < view.deadline:
            return view
        masked = sum(m.has_masked for m in view.members)
        signed = sum(m.check_sig is not None for m in view.members)
        if view.state == "masking" and masked >= view.min_inputs:
            self._close_masking(db, task, now)
        elif view.state == "checking" and signed >= view.min_inputs:
            set_state(db, task, "unmasking", deadline=now + task.config.timeout_s)
        elif view.state in ("sharing", "masking", "checking", "unmasking"):
            set_state(db, task, "failed", error=f"deadline passed in state {view.state}")
        fresh = read_cohort(db, task.task_id, task.base_version)
        assert fresh is not None
        return fresh

    def _close_masking(self, db: sqlite3.Connection, task: CohortTask, now: float) -> None:
        db.execute(
            "UPDATE cohort_members SET dropped = 1 WHERE task_id = ? AND base_version = ?"
            " AND masked IS NULL",
            (task.task_id, task.base_version),
        )
        survivors = db.execute(
            "SELECT device_id FROM cohort_members WHERE task_id = ? AND base_version = ?"
            " AND masked IS NOT NULL",
            (task.task_id, task.base_version),
        ).fetchall()
        set_survivors(db, task, [str(row[0]) for row in survivors])
        set_state(db, task, "checking", deadline=now + task.config.timeout_s)

    def _seal_secure(self, db: sqlite3.Connection, task: CohortTask) -> int | None:
        view = read_cohort(db, task.task_id, task.base_version)
        assert view is not None and view.survivors is not None
        by_device = masked_vectors(db, task)
        survivors = [m for m in view.members if m.device_id in view.survivors]
        dropped = [m for m in view.members if m.device_id not in view.survivors]
        publics = {m.position: m.mask_public or b"" for m in view.members}
        total = unmask_sum(
            {m.position: by_device[m.device_id] for m in survivors}, publics,
            {m.position: rebuild_secret(db, task, m, "key") for m in dropped},
            seeds={m.position: rebuild_secret(db, task, m, "seed") for m in survivors},
        )  # fmt: skip
        payload = secure_mean_payload(
            total, scale=view.scale, template=task.template,
            cohort_examples=sum(m.num_examples for m in view.members),
            survivor_examples=sum(m.num_examples for m in survivors),
        )  # fmt: skip
        examples = sum(m.num_examples for m in survivors)
        return self._seal(db, task, payload, examples, max(m.epsilon_micro for m in survivors))

    def _seal(
        self, db: sqlite3.Connection, task: CohortTask, payload: bytes, examples: int, eps: int
    ) -> int | None:
        try:
            check_delta(payload, task.template, max_norm=task.max_norm,
                        max_payload_bytes=task.max_payload_bytes)  # fmt: skip
        except UpdateRejectedError as exc:  # the members' inputs were valid one by one
            set_state(db, task, "failed", error=f"{exc.reason}: {exc.detail}")
            return None
        local_id = self._store.add_update(
            COHORT_SOURCE, task.task_id, task.base_version, payload,
            num_examples=examples, epsilon_micro=eps,
        )  # fmt: skip
        (ref,) = db.execute("SELECT ref FROM updates WHERE local_id = ?", (local_id,)).fetchone()
        set_state(db, task, "sealed", update_ref=str(ref))
        return local_id
