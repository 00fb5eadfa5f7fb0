"""Device: the checks a secure-cohort device applies to the edge's cohort view (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_server.cohort import CohortConfig
from edge_server.cohort_protocol import advertisement_bytes, survivors_bytes
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
from edge_server.secagg import generate_keypair
from fednode.site.device_identity import DeviceIdentity

CONFIG = CohortConfig(size=4, secure=True, threshold=3, min_size=3)
IDS = [f"d-{i}" for i in range(4)]
IDENTITIES = {d: DeviceIdentity.generate(device_id=d) for d in IDS}
ROSTER = parse_roster({d: i.public_key_hex for d, i in IDENTITIES.items()})


def _view(count: int = 4, **changes: Any) -> dict[str, Any]:
    members = []
    for position, device in enumerate(IDS[:count]):
        mask, enc = generate_keypair()[1], generate_keypair()[1]
        signed = advertisement_bytes(1, 0, device, num_examples=5, mask_public=mask,
                                     enc_public=enc)  # fmt: skip
        members.append({
            "device_id": device, "position": position, "num_examples": 5,
            "mask_public": mask.hex(), "enc_public": enc.hex(), "dropped": False,
            "advert_signature": IDENTITIES[device].private_key.sign(signed).hex(),
            "check_signature": None,
        })  # fmt: skip
    view = {"task_id": 1, "base_version": 0, "size": 4, "threshold": 3, "min_size": 3,
            "members": members, "survivors": None}  # fmt: skip
    return {**view, **changes}


def _reason(check: Any, *args: Any) -> str:
    with pytest.raises(CohortRefusedError) as refused:
        check(*args)
    return refused.value.reason


def test_verified_peers_accepts_roster_signed_advertisements() -> None:
    peers = verified_peers(_view(), ROSTER, CONFIG)
    assert sorted(peers) == IDS and peers["d-2"].position == 2


def test_view_settings_and_sizes_are_checked() -> None:
    assert _reason(check_settings, _view(threshold=1), CONFIG) == "cohort_mismatch"
    assert _reason(verified_peers, _view(count=2), ROSTER, CONFIG) == "cohort_too_small"
    partial_roster = {d: k for d, k in ROSTER.items() if d != "d-3"}
    assert _reason(verified_peers, _view(), partial_roster, CONFIG) == "unknown_peer"


def test_a_resigned_or_altered_advertisement_is_refused() -> None:
    view = _view()
    view["members"][1]["num_examples"] = 10_000  # the edge inflates a peer's weight
    assert _reason(verified_peers, view, ROSTER, CONFIG) == "bad_advertisement"


def test_survivor_list_needs_the_minimum_and_this_device() -> None:
    peers = verified_peers(_view(), ROSTER, CONFIG)
    assert check_survivors(_view(survivors=IDS[:3]), peers, CONFIG, "d-0") == IDS[:3]
    assert _reason(check_survivors, _view(survivors=IDS[:2]), peers, CONFIG,
                   "d-0") == "cohort_too_small"  # fmt: skip
    assert _reason(check_survivors, _view(survivors=IDS[1:]), peers, CONFIG,
                   "d-0") == "inconsistent_survivors"  # fmt: skip


def test_plan_reveal_never_gives_both_kinds_for_one_peer() -> None:
    # Arrange
    peers = {d: Peer(d, i, 5, b"", b"") for i, d in enumerate(IDS)}
    honest = _view(survivors=IDS)
    lying = _view(survivors=IDS)
    lying["members"][3]["dropped"] = True

    # Act
    plan = plan_reveal(honest, IDS, peers, {})

    # Assert
    assert set(plan.values()) == {"seed"}
    assert _reason(plan_reveal, lying, IDS, peers, {}) == "inconsistent_survivors"
    assert _reason(plan_reveal, lying, IDS, peers, plan) == "double_reveal"
    assert _reason(plan_reveal, _view(survivors=IDS[:3]), IDS, peers, {}) == (
        "inconsistent_survivors"
    )


def test_consistency_needs_threshold_signatures_over_the_same_list() -> None:
    # Arrange
    def signed_by(devices: list[str], survivors: list[str]) -> dict[str, Any]:
        view = _view(survivors=survivors)
        for member in view["members"]:
            if member["device_id"] in devices:
                message = survivors_bytes(1, 0, survivors)
                member["check_signature"] = (
                    IDENTITIES[member["device_id"]].private_key.sign(message).hex()
                )
        return view

    # Act / Assert
    assert check_consistency(signed_by(IDS[:3], IDS), IDS, ROSTER, CONFIG) == IDS[:3]
    assert _reason(check_consistency, signed_by(IDS[:2], IDS), IDS, ROSTER,
                   CONFIG) == "cohort_too_small"  # fmt: skip
    assert _reason(check_consistency, signed_by(IDS[:3], IDS[:3]), IDS, ROSTER,
                   CONFIG) == "inconsistent_survivors"  # fmt: skip
