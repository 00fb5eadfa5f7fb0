"""Aggregator: robust rules resist sign-flipped and scaled updates and stay bit-reproducible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fednode.aggregator.rules import fedavg_delta, make_aggregator
from fednode.codec import decode_params, digest, encode_params
from fednode.errors import FednodeValueError

REPO_ROOT = Path(__file__).resolve().parents[3]
RULES = ["median", "trimmed_mean", "krum", "norm_clip"]


def _honest(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    target = np.linspace(-1.0, 1.0, 12).astype(np.float32)
    return [{"w": (target + 0.1 * rng.normal(size=12)).astype(np.float32)} for _ in range(n)]


def _attacked(deltas: list[dict], attack: str, count: int) -> list[dict]:
    factor = -1.0 if attack == "sign_flip" else 50.0
    return [{"w": (d["w"] * factor).astype(np.float32)} for d in deltas[:count]] + deltas[count:]


@pytest.mark.parametrize("rule_name", RULES)
@pytest.mark.parametrize(("attack", "n", "bad"), [("sign_flip", 4, 1), ("scale", 4, 1),
                                                  ("scale", 20, 4), ("sign_flip", 20, 4)])
def test_robust_rules_stay_near_the_honest_mean(rule_name, attack, n, bad) -> None:
    # Arrange
    honest = _honest(n)
    clean = fedavg_delta(honest, [1] * n)["w"]
    poisoned = _attacked(honest, attack, bad)
    params = {"num_byzantine": bad} if rule_name == "krum" else {}
    rule = make_aggregator(rule_name, **params)
    # Act
    robust, _ = rule.apply(poisoned, [1] * n, rule.init())
    naive = fedavg_delta(poisoned, [1] * n)["w"]
    # Assert
    robust_error = float(np.linalg.norm(robust["w"] - clean))
    naive_error = float(np.linalg.norm(naive - clean))
    if rule_name == "norm_clip" and attack == "sign_flip":
        assert robust_error <= 1.1 * naive_error  # clipping bounds leverage, cannot undo a flip
    else:
        assert robust_error < 0.6 * float(np.linalg.norm(clean))
        assert robust_error < naive_error / 2


def test_median_of_an_even_count_averages_the_middle_pair() -> None:
    rule = make_aggregator("median")
    deltas = [{"w": np.array([v], np.float32)} for v in (4.0, 1.0, 3.0, 2.0)]
    assert rule.apply(deltas, [1] * 4, rule.init())[0]["w"].tolist() == [2.5]


def test_krum_reports_which_updates_it_kept() -> None:
    rule = make_aggregator("krum", num_byzantine=1)
    deltas = _attacked(_honest(5), "scale", 1)
    _, state = rule.apply(deltas, [1] * 5, rule.init())
    assert state.kept == (1, 2, 3, 4)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(FednodeValueError):
        make_aggregator("trimmed_mean", beta=0.7)
    with pytest.raises(FednodeValueError):
        make_aggregator("median", beta=0.1)


SCRIPT = """
import sys
from pathlib import Path
from fednode.aggregator.rules import make_aggregator
from fednode.codec import decode_params, digest
folder = Path(sys.argv[1])
deltas = [decode_params(p.read_bytes()) for p in sorted(folder.glob("d*.bin"))]
out = []
for name in ("median", "trimmed_mean", "krum", "norm_clip"):
    rule = make_aggregator(name)
    out.append(digest(rule.apply(deltas, [3, 1, 4, 1, 5], rule.init())[0]).hex())
print(",".join(out))
"""


def test_robust_rules_are_reproducible_in_a_fresh_process(tmp_path: Path) -> None:
    # Arrange
    rng = np.random.default_rng(7)
    deltas = [{"a": {"k": (rng.normal(size=(6, 5)) * 10.0**-i).astype(np.float32)}}
              for i in range(5)]
    for i, delta in enumerate(deltas):
        (tmp_path / f"d{i}.bin").write_bytes(encode_params(delta))
    local = []
    for name in RULES:
        rule = make_aggregator(name)
        loaded = [decode_params((tmp_path / f"d{i}.bin").read_bytes()) for i in range(5)]
        local.append(digest(rule.apply(loaded, [3, 1, 4, 1, 5], rule.init())[0]).hex())
    # Act
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    # Assert
    assert result.stdout.strip().split(",") == local
    assert json.dumps(local)  # four digests
