"""The audit report's update norms are norms of the decoded delta, never of the packed bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fednode.auditor.report_data import update_norms
from fednode.codec import encode_params
from fednode.types import GlobalModelRecord, LedgerUpdate
from fednode.update.packing import encode_int8, encode_top_k, pack_delta

_MODEL = {"w": np.zeros((4,), np.float32), "b": np.zeros((1,), np.float32)}
_SHAPES = {"b": (1,), "w": (4,)}


def _version(update_ids: tuple[int, ...]) -> GlobalModelRecord:
    return GlobalModelRecord(1, 1, b"\x00" * 32, update_ids, "0xAgg", encode_params(_MODEL),
                             5, b"\x00" * 32)


def _update(update_id: int, edge: str, payload: bytes) -> LedgerUpdate:
    return LedgerUpdate(update_id, 1, 0, edge, b"\x00" * 32, 10, 0, payload, 4, b"\x00" * 32)


def test_int8_update_norm_is_the_norm_of_the_dequantized_delta() -> None:
    w = np.array([3.0, -4.0, 0.0, 0.0], np.float32)
    b = np.array([12.0], np.float32)
    packed = pack_delta({"w": encode_int8(w), "b": encode_int8(b)}, _SHAPES)
    dense = encode_params({"w": np.array([0.0, 1.0, 0.0, 0.0], np.float32),
                           "b": np.array([0.0], np.float32)})
    norms = update_norms((_version((1, 2)),),
                         (_update(1, "0xA", encode_params(packed)), _update(2, "0xB", dense)),
                         compression=("int8",))
    # int8 with one scale per tensor keeps 3, -4 and 12 to well under 1 %.
    assert norms["0xA"][1][0] == pytest.approx(13.0, rel=1e-2)
    assert norms["0xB"][1][0] == pytest.approx(1.0)
    # the int8 codes themselves (127, -127, ...) would give a norm far above 13
    codes = np.asarray(packed["q"], np.float64)
    assert math.sqrt(float(np.sum(codes**2))) > 100


def test_top_k_update_norm_counts_only_the_kept_values() -> None:
    parts = {"w": encode_top_k(np.array([0.0, 6.0, 0.0, -8.0], np.float32), 2),
             "b": encode_top_k(np.array([0.0], np.float32), 1)}
    payload = encode_params(pack_delta(parts, _SHAPES))
    norms = update_norms((_version((1,)),), (_update(1, "0xA", payload),),
                         compression=("topk:0.5",))
    assert norms["0xA"][1][0] == pytest.approx(10.0)


def test_a_payload_of_another_compression_is_left_out_not_misread() -> None:
    packed = pack_delta({"w": encode_int8(np.ones(4, np.float32)),
                         "b": encode_int8(np.ones(1, np.float32))}, _SHAPES)
    norms = update_norms((_version((1,)),), (_update(1, "0xA", encode_params(packed)),),
                         compression=())
    assert norms == {}
