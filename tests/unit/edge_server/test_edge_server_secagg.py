"""Edge: secure aggregation: masks cancel, dropouts are recovered, single inputs stay hidden."""

from __future__ import annotations

import numpy as np
import pytest

from edge_server.secagg import (
    combine_shares,
    decrypt_shares,
    dequantize,
    encrypt_shares,
    generate_keypair,
    generate_seed,
    mask_update,
    pair_mask,
    quantize,
    self_mask,
    split_secret,
    unmask_sum,
)

SCALE = 2.0**16


def _cohort(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = {i: generate_keypair() for i in range(n)}
    seeds = {i: generate_seed() for i in range(n)}
    publics = {i: public for i, (_, public) in keys.items()}
    deltas = {i: rng.normal(size=size) for i in range(n)}
    masked = {
        i: mask_update(
            i, quantize(deltas[i], scale=SCALE), keys[i][0],
            {j: p for j, p in publics.items() if j != i}, seed=seeds[i],
        )
        for i in range(n)
    }  # fmt: skip
    return keys, seeds, publics, deltas, masked


def test_masks_cancel_in_the_cohort_sum_bit_for_bit() -> None:
    # Arrange
    _, seeds, publics, deltas, masked = _cohort(5, 64)

    # Act
    total = unmask_sum(masked, publics, {}, seeds=seeds)

    # Assert: the integer sum is exact (mod 2**32), so its decoding is too
    exact = sum(quantize(d, scale=SCALE).astype(np.uint64) for d in deltas.values()) % 2**32
    np.testing.assert_array_equal(total, exact.astype(np.uint32))
    np.testing.assert_allclose(dequantize(total, scale=SCALE), sum(deltas.values()), atol=5 / SCALE)


def test_a_dropped_device_is_recovered_from_threshold_shares() -> None:
    # Arrange: device 2 shares its mask key among 5, then drops before sending
    keys, seeds, publics, deltas, masked = _cohort(5, 32, seed=1)
    shares = split_secret(keys[2][0], shares=5, threshold=3)
    survivors = {i: v for i, v in masked.items() if i != 2}

    # Act
    rebuilt = combine_shares({x: shares[x] for x in (1, 4, 5)})
    survivor_seeds = {i: s for i, s in seeds.items() if i != 2}
    total = dequantize(unmask_sum(survivors, publics, {2: rebuilt}, seeds=survivor_seeds),
                       scale=SCALE)  # fmt: skip

    # Assert
    assert rebuilt == keys[2][0]
    expected = sum(d for i, d in deltas.items() if i != 2)
    np.testing.assert_allclose(total, expected, atol=4 / SCALE)


def test_unmasking_refuses_a_missing_seed() -> None:
    _, seeds, publics, _, masked = _cohort(3, 4, seed=5)
    with pytest.raises(ValueError, match="seed of every survivor"):
        unmask_sum(masked, publics, {}, seeds={0: seeds[0], 1: seeds[1]})


def test_one_masked_input_reveals_nothing_like_the_delta() -> None:
    _, _, _, deltas, masked = _cohort(3, 2000, seed=2)
    seen = dequantize(masked[0], scale=SCALE)
    assert abs(np.corrcoef(seen, deltas[0])[0, 1]) < 0.1


def test_either_mask_alone_still_hides_the_input() -> None:
    # Arrange: the edge learns device 0's mask key (it "dropped") or its seed (it "survived")
    keys, seeds, publics, deltas, masked = _cohort(3, 2000, seed=3)
    size = masked[0].size
    pairwise = sum(
        (pair_mask(keys[0][0], publics[j], size).astype(np.uint64) for j in (1, 2)),
        np.zeros(size, np.uint64),
    )

    # Act: strip one kind of mask, then the other
    without_pairwise = (masked[0].astype(np.uint64) + 2**32 * 2 - pairwise) % 2**32
    without_self = (masked[0].astype(np.uint64) + 2**32 - self_mask(seeds[0], size)) % 2**32

    # Assert: neither is the input; both together are
    for stripped in (without_pairwise, without_self):
        seen = dequantize(stripped.astype(np.uint32), scale=SCALE)
        assert abs(np.corrcoef(seen, deltas[0])[0, 1]) < 0.1
    both = (without_pairwise + 2**32 - self_mask(seeds[0], size)) % 2**32
    np.testing.assert_allclose(dequantize(both.astype(np.uint32), scale=SCALE), deltas[0],
                               atol=1 / SCALE)  # fmt: skip


def test_share_boxes_open_only_for_their_recipient_and_context() -> None:
    # Arrange
    (a, pa), (b, pb), (c, _) = generate_keypair(), generate_keypair(), generate_keypair()
    box = encrypt_shares(11, 22, a, pb, context=b"task:1")

    # Act / Assert
    assert decrypt_shares(box, b, pa, context=b"task:1") == (11, 22)
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt_shares(box, b, pa, context=b"task:2")
    with pytest.raises(ValueError, match="does not decrypt"):
        decrypt_shares(box, c, pa, context=b"task:1")


def test_fewer_shares_than_the_threshold_rebuild_garbage() -> None:
    secret = generate_keypair()[0]
    shares = split_secret(secret, shares=5, threshold=3)
    try:
        rebuilt = combine_shares({x: shares[x] for x in (1, 2)})
    except ValueError:
        rebuilt = None
    assert rebuilt != secret
