"""Adversary: a curious edge server against its secure cohorts (Bonawitz et al. 2017).

The attacker runs the edge and owns its SQLite database: it edits rows, substitutes keys,
declares devices dropped and shows devices whatever cohort view it likes. The devices are honest
and hold only their roster (the enrolled Ed25519 keys their operator provisioned) and the task's
cohort settings. Each test acts as that edge and asserts that the devices refuse with a named
:class:`CohortRefusedError`, that nothing is revealed, and what the edge can and cannot compute
from everything it gathered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_server.cohort import vector_from_params
from edge_server.cohort_client import SecureCohortDevice
from edge_server.cohort_protocol import advertisement_bytes
from edge_server.cohort_trust import CohortRefusedError
from edge_server.secagg import (
    combine_shares,
    dequantize,
    generate_keypair,
    pair_mask,
    quantize,
    self_mask,
)
from edge_server.service import enroll_device
from fednode.codec import decode_params
from fednode.site.device_client import DeviceIdentity, EdgeClient
from tests.unit.edge_server.cohort_harness import (
    SECURE_EXAMPLES,
    TEMPLATE,
    TIMEOUT_S,
    Cohorts,
    all_blobs,
    deltas,
    running_cohorts,
)

VICTIM = "clinic-3"
_MOD = 2**32


@pytest.fixture
def cohorts(tmp_path: Path) -> Iterator[Cohorts]:
    with running_cohorts(tmp_path) as running:
        yield running


def _devices(cohorts: Cohorts, count: int = 4) -> list[SecureCohortDevice]:
    devices = [cohorts.device(i) for i in range(count)]
    for device, examples in zip(devices, SECURE_EXAMPLES, strict=False):
        device.advertise(examples)
    return devices


def _to_masked(cohorts: Cohorts, values: list[dict[str, Any]], senders: range) -> list[Any]:
    devices = _devices(cohorts)
    for device in devices:
        device.share()
    for index in senders:
        devices[index].send_masked(values[index])
    return devices


def _refusal(action: Any) -> str:
    with pytest.raises(CohortRefusedError) as refused:
        action()
    return refused.value.reason


def _count(db: sqlite3.Connection, sql: str, *args: object) -> int:
    return int(db.execute(sql, args).fetchone()[0])


def _weighted_fixed(cohorts: Cohorts, delta: dict[str, Any], examples: int) -> np.ndarray:
    scale = cohorts.device(0).cohort()["scale"]
    weighted = examples / sum(SECURE_EXAMPLES) * vector_from_params(delta, TEMPLATE)
    return quantize(weighted, scale=scale)


def _edge_rebuilds(db: sqlite3.Connection, peer: str, kind: str) -> bytes | None:
    """What the edge gets from every share of ``kind`` it holds for ``peer`` (None: nothing)."""
    rows = db.execute(
        "SELECT x, share FROM cohort_reveals WHERE peer = ? AND kind = ?", (peer, kind)
    ).fetchall()
    try:
        return combine_shares({int(x): int(s, 16) for x, s in rows}) if rows else None
    except ValueError:
        return None


def _far(vector: np.ndarray, fixed: np.ndarray, scale: float) -> bool:
    """Whether a uint32 vector decodes to something unlike the fixed-point input."""
    seen = dequantize(vector.astype(np.uint32), scale=scale)
    return bool(np.max(np.abs(seen - dequantize(fixed, scale=scale))) > 1.0)


# ---- (a) the edge substitutes a device's key advertisement --------------------------------------


@pytest.mark.parametrize("forge", ["keys_only", "keys_and_edge_signature"])
def test_edge_substituting_a_key_advertisement_is_refused(cohorts: Cohorts, forge: str) -> None:
    # Arrange: all four advertise; the edge puts its own X25519 key in place of the victim's
    devices = _devices(cohorts)
    _, edge_public = generate_keypair()
    edge_identity = DeviceIdentity.generate(device_id="edge-operator")
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohort_members SET mask_public = ?, enc_public = ? WHERE device_id = ?",
                   (edge_public, edge_public, VICTIM))  # fmt: skip
        if forge == "keys_and_edge_signature":  # and signs the forged advertisement itself
            signed = advertisement_bytes(
                cohorts.secure_task, 0, VICTIM, num_examples=SECURE_EXAMPLES[3],
                mask_public=edge_public, enc_public=edge_public,
            )  # fmt: skip
            db.execute("UPDATE cohort_members SET advert_sig = ? WHERE device_id = ?",
                       (edge_identity.private_key.sign(signed), VICTIM))  # fmt: skip

    # Act: the three other devices are asked to share their secrets
    reasons = [_refusal(device.share) for device in devices[:3]]

    # Assert: refused by name, recorded, and no share box (encrypted or not) was sent
    assert reasons == ["bad_advertisement"] * 3
    assert all([r.reason for r in d.refusals] == ["bad_advertisement"] for d in devices[:3])
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_shares") == 0


def test_edge_enrolling_its_own_device_into_a_cohort_is_refused(cohorts: Cohorts) -> None:
    # Arrange: the edge enrolls a device of its own (valid signatures under a key it registered
    # itself) and fills the fourth seat with it
    devices = _devices(cohorts, count=3)
    sybil = DeviceIdentity.generate(device_id="edge-sybil")
    enroll_device(cohorts.store, sybil.device_id, sybil.public_key_hex)
    sybil_device = SecureCohortDevice(
        EdgeClient("http://testserver", sybil, http=cohorts.http, clock=lambda: cohorts.now[0]),
        cohorts.secure_task, 0, config=cohorts.secure_config,
        roster={sybil.device_id: sybil.public_key_hex}, clock=lambda: cohorts.now[0],
    )  # fmt: skip
    sybil_device.advertise(100)

    # Act
    reasons = [_refusal(device.share) for device in devices]

    # Assert: the edge's registry is not the devices' roster
    assert devices[0].cohort()["state"] == "sharing"
    assert reasons == ["unknown_peer"] * 3
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_shares WHERE sender != ?", "edge-sybil") == 0


# ---- (b) the edge claims a device dropped after it sent its masked input ------------------------


def _drop_victim(cohorts: Cohorts, survivors: list[str] | None) -> None:
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohort_members SET dropped = 1 WHERE device_id = ?", (VICTIM,))
        if survivors is not None:
            db.execute("UPDATE cohorts SET survivors = ?", (json.dumps(survivors),))


def _restore_victim(cohorts: Cohorts) -> None:
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohort_members SET dropped = 0 WHERE device_id = ?", (VICTIM,))
        db.execute("UPDATE cohorts SET survivors = ?",
                   (json.dumps([f"clinic-{i}" for i in range(4)]),))  # fmt: skip


def test_devices_never_reveal_both_shares_of_a_signed_survivor(cohorts: Cohorts) -> None:
    # Arrange: all four sent masked input and signed the survivor list that holds the victim
    values = deltas(seed=11)
    devices = _to_masked(cohorts, values, range(4))
    for device in devices:
        device.check()
    assert devices[0].cohort()["state"] == "unmasking"

    # Act 1: the edge now says the victim dropped and asks for its mask-key shares
    _drop_victim(cohorts, ["clinic-0", "clinic-1", "clinic-2"])
    first = [_refusal(device.reveal) for device in devices[:3]]
    _restore_victim(cohorts)
    _drop_victim(cohorts, None)  # the survivor list intact, only the dropped flag
    flagged = [_refusal(device.reveal) for device in devices[:3]]

    # Act 2: two devices reveal honestly (seed share of the victim), then the edge asks again
    _restore_victim(cohorts)
    for device in devices[:2]:
        device.reveal()
    _drop_victim(cohorts, None)
    second = [_refusal(device.reveal) for device in devices[:3]]

    # Assert: refused by name; the edge holds no mask-key share of the victim at all
    assert first == ["inconsistent_survivors"] * 3
    assert flagged == ["inconsistent_survivors"] * 3
    assert second == ["double_reveal", "double_reveal", "inconsistent_survivors"]
    assert devices[0].revealed[VICTIM] == "seed"
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_reveals WHERE kind = 'key'") == 0
        assert _edge_rebuilds(db, VICTIM, "key") is None
        # two seed shares of three needed: not even the victim's self mask
        assert _edge_rebuilds(db, VICTIM, "seed") != devices[3]._seed
        (masked,) = db.execute("SELECT masked FROM cohort_members WHERE device_id = ?",
                               (VICTIM,)).fetchone()  # fmt: skip

    # Assert: even granted the victim's seed (the honest finish reveals it), the victim's
    # masked input minus its self mask is not its input: the pairwise masks stay on
    scale = devices[0].cohort()["scale"]
    fixed = _weighted_fixed(cohorts, values[3], SECURE_EXAMPLES[3])
    vector = np.frombuffer(masked, "<u4").astype(np.uint64)
    without_self = (vector + _MOD - self_mask(devices[3]._seed, vector.size)) % _MOD
    assert _far(without_self, fixed, scale)

    # Assert: nothing honest was lost: restored, the third reveal seals the exact sum
    _restore_victim(cohorts)
    devices[2].reveal()
    (aggregate,) = cohorts.store.list_updates()
    assert aggregate.num_examples == sum(SECURE_EXAMPLES)


def test_a_device_declared_dropped_before_the_check_stays_masked(cohorts: Cohorts) -> None:
    # Arrange: all four sent masked input; the edge, in the checking round, tells the others
    # that the victim dropped (it keeps the victim's masked vector)
    values = deltas(seed=12)
    devices = _to_masked(cohorts, values, range(4))
    _drop_victim(cohorts, ["clinic-0", "clinic-1", "clinic-2"])

    # Act: the three sign the list they are shown and reveal the victim's mask-key shares
    victim_refusal = _refusal(devices[3].check)
    for device in devices[:3]:
        device.check()
    for device in devices[:3]:
        device.reveal()

    # Assert: the victim itself refuses to sign a list without it
    assert victim_refusal == "inconsistent_survivors"
    with cohorts.raw_db() as db:
        key = _edge_rebuilds(db, VICTIM, "key")
        seed = _edge_rebuilds(db, VICTIM, "seed")
        (masked,) = db.execute("SELECT masked FROM cohort_members WHERE device_id = ?",
                               (VICTIM,)).fetchone()  # fmt: skip
        publics = dict(db.execute("SELECT device_id, mask_public FROM cohort_members"))
    assert key is not None and seed is None  # the mask key, never the self-mask seed

    # Assert: stripping every pairwise mask (the victim sits last: it subtracted them all)
    # leaves the input under its self mask, which the edge cannot remove
    scale = devices[0].cohort()["scale"]
    vector = np.frombuffer(masked, "<u4").astype(np.uint64)
    for peer in ("clinic-0", "clinic-1", "clinic-2"):
        vector = (vector + pair_mask(key, bytes(publics[peer]), vector.size)) % _MOD
    fixed = _weighted_fixed(cohorts, values[3], SECURE_EXAMPLES[3])
    assert _far(vector, fixed, scale)
    unmasked = (vector + _MOD - self_mask(devices[3]._seed, vector.size)) % _MOD
    np.testing.assert_array_equal(unmasked.astype(np.uint32), fixed)  # the seed was the lock
    (aggregate,) = cohorts.store.list_updates()  # the sum of the other three
    assert aggregate.num_examples == sum(SECURE_EXAMPLES[:3])


# ---- (c) a cohort below the minimum -------------------------------------------------------------


def test_edge_starting_a_cohort_below_the_minimum_is_refused(cohorts: Cohorts) -> None:
    # Arrange: two devices advertise; the edge moves the cohort on anyway
    devices = _devices(cohorts, count=2)
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohorts SET state = 'sharing'")

    # Act
    too_small = [_refusal(device.share) for device in devices]
    with cohorts.raw_db() as db:  # or it claims the task asked for a cohort of two
        db.execute("UPDATE cohorts SET size = 2, threshold = 2, min_size = 2")
    mismatch = [_refusal(device.share) for device in devices]

    # Assert
    assert too_small == ["cohort_too_small"] * 2
    assert mismatch == ["cohort_mismatch"] * 2
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_shares") == 0


def test_edge_packing_more_devices_than_the_cohort_size_is_refused(cohorts: Cohorts) -> None:
    # Arrange: a fifth enrolled device (in everyone's roster) is let in by the edge reopening
    # advertising: its shares would then reach more peers than the threshold was set for
    fifth = DeviceIdentity.generate(device_id="clinic-4")
    enroll_device(cohorts.store, fifth.device_id, fifth.public_key_hex)
    roster = {**cohorts.roster, fifth.device_id: fifth.public_key_hex}
    devices = [
        SecureCohortDevice(client, cohorts.secure_task, 0, config=cohorts.secure_config,
                           roster=roster, clock=lambda: cohorts.now[0])
        for client in cohorts.clients
    ]  # fmt: skip
    for device, examples in zip(devices, SECURE_EXAMPLES, strict=True):
        device.advertise(examples)
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohorts SET state = 'advertising', size = 5")
    fifth_client = EdgeClient("http://testserver", fifth, http=cohorts.http,
                              clock=lambda: cohorts.now[0])  # fmt: skip
    SecureCohortDevice(fifth_client, cohorts.secure_task, 0, config=cohorts.secure_config,
                       roster=roster, clock=lambda: cohorts.now[0]).advertise(7)  # fmt: skip
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohorts SET state = 'sharing', size = 4")

    # Act
    reasons = [_refusal(device.share) for device in devices]

    # Assert
    assert len(devices[0].cohort()["members"]) == 5
    assert reasons == ["cohort_mismatch"] * 4
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_shares") == 0


def test_edge_summing_fewer_inputs_than_the_minimum_is_refused(cohorts: Cohorts) -> None:
    # Arrange: four share, two send masked input; the edge closes masking with those two
    devices = _to_masked(cohorts, deltas(seed=13), range(2))
    with cohorts.raw_db() as db:
        db.execute("UPDATE cohort_members SET dropped = 1 WHERE masked IS NULL")
        db.execute("UPDATE cohorts SET state = 'checking', survivors = ?",
                   (json.dumps(["clinic-0", "clinic-1"]),))  # fmt: skip

    # Act
    reasons = [_refusal(device.check) for device in devices[:2]]
    unsigned = [_refusal(device.reveal) for device in devices[:2]]

    # Assert: no signature, no share revealed
    assert reasons == ["cohort_too_small"] * 2
    assert unsigned == ["inconsistent_survivors"] * 2
    with cohorts.raw_db() as db:
        assert _count(db, "SELECT COUNT(*) FROM cohort_members WHERE check_sig IS NOT NULL") == 0
        assert _count(db, "SELECT COUNT(*) FROM cohort_reveals") == 0


# ---- (d) an honest run with one real dropout ----------------------------------------------------

_ALLOWED_BLOBS = {
    ("cohort_members", "mask_public"), ("cohort_members", "enc_public"),
    ("cohort_members", "advert_sig"), ("cohort_members", "check_sig"),
    ("cohort_members", "masked"), ("cohort_shares", "box"), ("updates", "payload"),
}  # fmt: skip


def _blob_columns(db_path: Path) -> set[tuple[str, str]]:
    found = set()
    with sqlite3.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = db.execute(f"SELECT * FROM {table}")
            names = [c[0] for c in cursor.description]
            for row in cursor:
                found |= {(table, n) for n, v in zip(names, row, strict=True) if type(v) is bytes}
    return found


def test_honest_cohort_with_a_dropout_gives_the_edge_the_sum_only(cohorts: Cohorts) -> None:
    # Arrange: the victim shares its secrets and then really drops before its masked input
    values = deltas(seed=14)
    devices = _to_masked(cohorts, values, range(3))

    # Act
    cohorts.now[0] += TIMEOUT_S + 1
    for device in devices[:3]:
        device.check()
    for device in devices[:3]:
        device.reveal()

    # Assert: the sum is exact, bit for bit, from the survivors' quantized inputs
    (aggregate,) = cohorts.store.list_updates()
    scale = devices[0].cohort()["scale"]
    fixed = [_weighted_fixed(cohorts, values[i], SECURE_EXAMPLES[i]) for i in range(3)]
    exact = (sum(f.astype(np.uint64) for f in fixed) % _MOD).astype(np.uint32)
    rescale = sum(SECURE_EXAMPLES) / sum(SECURE_EXAMPLES[:3])
    expected = dequantize(exact, scale=scale) * rescale
    got = vector_from_params(decode_params(aggregate.payload), TEMPLATE)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    assert all(d.refusals == [] for d in devices)

    # Assert: the database holds keys, signatures, boxes, masked inputs and the sum, no delta
    assert _blob_columns(cohorts.db_path) <= _ALLOWED_BLOBS
    blobs = all_blobs(cohorts.db_path)
    for f in fixed:
        assert f.astype("<u4").tobytes() not in blobs
        assert all(not (len(b) == f.nbytes and not _far(np.frombuffer(b, "<u4"), f, scale))
                   for b in blobs)  # fmt: skip

    # Assert: seed shares for survivors only, a key share for the dropout only; so every
    # survivor's masked input minus its (rebuilt) self mask is still pairwise masked
    with cohorts.raw_db() as db:
        kinds = dict(db.execute("SELECT peer, group_concat(DISTINCT kind) FROM cohort_reveals"
                                " GROUP BY peer"))  # fmt: skip
        for i in range(3):
            seed = _edge_rebuilds(db, f"clinic-{i}", "seed")
            assert seed is not None and _edge_rebuilds(db, f"clinic-{i}", "key") is None
            (masked,) = db.execute("SELECT masked FROM cohort_members WHERE device_id = ?",
                                   (f"clinic-{i}",)).fetchone()  # fmt: skip
            vector = np.frombuffer(masked, "<u4").astype(np.uint64)
            assert _far((vector + _MOD - self_mask(seed, vector.size)) % _MOD, fixed[i], scale)
    assert kinds == {"clinic-0": "seed", "clinic-1": "seed", "clinic-2": "seed", VICTIM: "key"}
