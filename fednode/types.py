"""All stages: the frozen value types that travel between device, edge, chain, aggregator and
auditor."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fednode.codec import digest_bytes
from fednode.errors import TaskSpecError

__all__ = [
    "ACCEPTANCE_RULES",
    "AGGREGATION_RULES",
    "DEFAULT_LOCAL_OPTIMIZER",
    "DEFAULT_MAX_EXAMPLES",
    "DP_UNITS",
    "LOCAL_OPTIMIZERS",
    "METRIC_SCALE",
    "MODEL_KINDS",
    "NOISE_CALIBRATIONS",
    "NO_METRIC_MICRO",
    "STALENESS_WEIGHTINGS",
    "EdgeCohort",
    "EvaluationRecord",
    "GlobalModelRecord",
    "LedgerUpdate",
    "TaskRecord",
    "TaskSpec",
    "TaskState",
]

MODEL_KINDS = ("logreg", "mlp", "cnn1d", "feature_stats")
AGGREGATION_RULES = ("fedavg", "krum", "median", "norm_clip", "sum", "trimmed_mean")
ACCOUNTANT_KINDS = ("pld", "rdp")
ACCEPTANCE_RULES = ("all", "quorum")
"""``TaskSpec.acceptance_rule``: "quorum" (default) accepts a version once more than
``acceptance_quorum`` of the sites that must evaluate it reach ``metric_floor``, so no single
site's report accepts or vetoes it (with 3 sites or more); "all" needs every site (each one
holds a veto: an explicit choice, e.g. when the worst site must be served)."""
NOISE_CALIBRATIONS = ("fixed", "per_site")
"""``TaskSpec.noise_calibration``: one ``noise_multiplier`` for every site ("fixed", the default)
or each site's own, solved for ``epsilon_budget`` on its data ("per_site",
``fednode.privacy.site_privacy_spec``)."""
EPSILON_SCALE = 1_000_000
"""On-chain privacy spend is an integer number of micro-epsilons."""
METRIC_SCALE = 1_000_000
"""On-chain evaluation metrics in [0, 1] are integer micro units (``EvaluationLedger``)."""
NO_METRIC_MICRO = 2**32 - 1
"""The on-chain ``secondaryMicro`` of an evaluation without a second metric."""
DEFAULT_MAX_EXAMPLES = 100_000
"""``TaskSpec.max_examples`` unless the publisher says otherwise: the most examples one update
may claim. Far above any site of the shipped tasks (the largest heart site has 303 rows), far
below what lets one update own FedAvg's weighted mean (2**63)."""
MAX_UINT64 = 2**64 - 1
DP_UNITS = ("update", "example")
"""``TaskSpec.dp_unit``: what one DP mechanism protects: a site's whole update per round
("update", noise added to the clipped delta) or one example (DP-SGD inside local training)."""
LOCAL_OPTIMIZERS = ("adam", "momentum", "sgd")
"""``TaskSpec.local_optimizer``: the optax optimizer of local training."""
DEFAULT_LOCAL_OPTIMIZER = "sgd"
STALENESS_WEIGHTINGS = ("constant", "sqrt")
"""``TaskSpec.staleness_weighting``: how an async task scales a stale update."""
MAX_COHORT_SIZE = 256
MIN_SECURE_INPUTS = 3
"""Fewest masked inputs a secure cohort's sum may hold: the sum goes on chain, and a sum of two
tells each of the two the other's delta."""

Params = tuple[tuple[str, float], ...]
"""Keyword parameters frozen as ``(name, value)`` pairs sorted by name (JSON: an object)."""


class TaskState(enum.IntEnum):
    """Derived lifecycle state of a task; mirrors ``TaskRegistry.TaskState`` in Solidity."""

    OPEN = 0
    TRAINING = 1
    FINISHED = 2
    CANCELLED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class EdgeCohort:
    """How an edge groups its devices into cohorts (``TaskSpec.edge_cohort``; edge_server.cohort).

    Attributes:
      size: devices per cohort (1..256).
      secure: whether devices mask their inputs (secure aggregation, at least 3 devices).
      threshold: Shamir threshold (secure only; default ``size // 2 + 1``): more than half of
        ``size``. None for a plain cohort.
      min_size: fewest devices (and masked inputs) a secure cohort may hold (secure only;
        default ``max(3, threshold)``), in ``3..size``. None for a plain cohort.
      timeout_s: how long a secure cohort waits in each round (> 0).

    Raises:
      TaskSpecError: naming the bad field.
    """

    size: int
    secure: bool = False
    threshold: int | None = None
    min_size: int | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not _is_int(self.size) or not 1 <= self.size <= MAX_COHORT_SIZE:
            raise TaskSpecError(f"edge_cohort.size must be an int in 1..{MAX_COHORT_SIZE}, "
                                f"got {self.size!r}")
        if not isinstance(self.secure, bool):
            raise TaskSpecError(f"edge_cohort.secure must be a bool, got {self.secure!r}")
        timeout = self.timeout_s
        if not _is_number(timeout) or not timeout > 0:
            raise TaskSpecError(f"edge_cohort.timeout_s must be a number > 0, got {timeout!r}")
        object.__setattr__(self, "timeout_s", float(timeout))
        if not self.secure:
            if self.threshold is not None or self.min_size is not None:
                raise TaskSpecError("edge_cohort.threshold and min_size are for secure cohorts")
            return
        self._resolve_secure_bounds()

    def _resolve_secure_bounds(self) -> None:
        size = self.size
        if size < MIN_SECURE_INPUTS:
            raise TaskSpecError(f"a secure edge_cohort needs size >= {MIN_SECURE_INPUTS}")
        threshold = size // 2 + 1 if self.threshold is None else self.threshold
        if not _is_int(threshold) or not size // 2 < threshold <= size:
            raise TaskSpecError("edge_cohort.threshold must be more than half of the cohort: "
                                f"{size // 2 + 1}..{size}, got {threshold!r}")
        min_size = max(MIN_SECURE_INPUTS, threshold) if self.min_size is None else self.min_size
        if not _is_int(min_size) or not MIN_SECURE_INPUTS <= min_size <= size:
            raise TaskSpecError(f"edge_cohort.min_size must be in {MIN_SECURE_INPUTS}..{size}, "
                                f"got {min_size!r}")
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "min_size", min_size)

    def bounds(self) -> tuple[int, int]:
        """``(threshold, min_size)``: the secure cohort's, or ``(size, size)`` for a plain one.

        Example:
          >>> EdgeCohort(size=5).bounds(), EdgeCohort(size=5, secure=True).bounds()
          ((5, 5), (3, 3))
        """
        if self.threshold is None or self.min_size is None:
            return self.size, self.size
        return self.threshold, self.min_size

    @classmethod
    def from_mapping(cls, raw: object) -> EdgeCohort:
        """Builds a cohort from a JSON/TOML object; refuses unknown keys with a TaskSpecError.

        Example:
          >>> EdgeCohort.from_mapping({"size": 4, "secure": True})
          EdgeCohort(size=4, secure=True, threshold=3, min_size=3, timeout_s=60.0)
        """
        if not isinstance(raw, Mapping):
            raise TaskSpecError(f"edge_cohort must be an object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TaskSpecError(f"edge_cohort has unknown keys {unknown}")
        if "size" not in raw:
            raise TaskSpecError("edge_cohort needs a size")
        return cls(**raw)


@dataclass(frozen=True)
class TaskSpec:
    """The immutable description of a training job, published on-chain as canonical JSON.

    The contract stores ``keccak256(spec_json)`` and the fields it enforces (rounds,
    min_updates, max_staleness, deadline); the JSON itself is calldata of the publishing
    transaction, so anyone can read it back and check it against the digest.

    Every field is typed and the value is frozen all the way down (tuples, frozen dataclasses),
    so a spec's digest cannot change after it is built.

    Groups: model (model, hidden_sizes, num_features, data_schema, num_classes, kernel_size,
    sequence_length); local training (local_epochs, batch_size, learning_rate, proximal_mu,
    local_optimizer); aggregation (aggregation with aggregation_params, mode
    "sync"/"async", min_updates = buffer size K, max_staleness, aggregator_quorum,
    server_optimizer, server_learning_rate, server_optimizer_params, staleness_weighting);
    edge cohorts (edge_cohort); normalization (normalization_task); privacy (clip_norm,
    noise_multiplier, epsilon_budget per site, 0 = none, delta, accountant "rdp"/"pld", dp_unit,
    noise_calibration "fixed" or "per_site", site_sampling); compression (chain of
    update transforms, e.g. ("int8",)); update bounds (max_update_norm, max_examples: the
    most examples one update may claim); acceptance (metric_floor per site, acceptance_rule
    and acceptance_quorum: see ``ACCEPTANCE_RULES``); deadline (unix s).
    """

    name: str
    data_schema: str
    num_features: int
    model: str = "logreg"
    hidden_sizes: tuple[int, ...] = ()
    rounds: int = 10
    min_updates: int = 4
    max_staleness: int = 0
    local_epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.05
    proximal_mu: float = 0.0
    aggregation: str = "fedavg"
    max_update_norm: float = 100.0
    metric_floor: float = 0.0
    deadline: int = 0
    seed: int = 0
    mode: str = "sync"
    aggregator_quorum: int = 1
    server_optimizer: str = "none"
    server_learning_rate: float = 1.0
    clip_norm: float = 0.0
    noise_multiplier: float = 0.0
    epsilon_budget: float = 0.0
    delta: float = 1e-5
    accountant: str = "rdp"
    compression: tuple[str, ...] = ()
    # --- update bounds (issue 13 part 2): enforced by the edge, UpdateLedger.submitUpdate, the
    # aggregator and the auditor (fednode.update.check_num_examples) -------------------------
    max_examples: int = DEFAULT_MAX_EXAMPLES
    # --- end of update bounds ----------------------------------------------------------------
    # --- typed options (issue 14 part 3: were the untyped ``extra`` dict) ---------------------
    # model: cnn1d head and kernel, the sequence length a site's windows must have (0: any)
    num_classes: int = 2
    kernel_size: int = 5
    sequence_length: int = 0
    # local training
    local_optimizer: str = DEFAULT_LOCAL_OPTIMIZER
    # aggregation: the rule's and the server optimizer's keyword parameters, async staleness
    aggregation_params: Params = ()
    server_optimizer_params: Params = ()
    staleness_weighting: str = "sqrt"
    # privacy: what one mechanism protects, fixed or per-site noise, site sampling (only 1.0)
    dp_unit: str = "update"
    noise_calibration: str = "fixed"
    site_sampling: float = 1.0
    # edge cohorts (None: every device's update goes on chain by itself)
    edge_cohort: EdgeCohort | None = None
    # the feature-stats task whose sums normalize this task's features (0: none)
    normalization_task: int = 0
    # the digest of the data schema ``data_schema`` names, as the publisher gave it ("": none);
    # "0x" + 64 lowercase hex digits once set
    schema_digest: str = ""
    # --- end of typed options ----------------------------------------------------------------
    # ---- acceptance gate (issue 13, part 4): how the sites' evaluations decide a version ----
    # "quorum": accepted once more than acceptance_quorum (in [0.5, 1)) of the sites reach
    # metric_floor; "all": every site must (each holds a veto). See ACCEPTANCE_RULES.
    acceptance_rule: str = "quorum"
    acceptance_quorum: float = 0.5

    def __post_init__(self) -> None:
        _freeze(self)
        _check_spec(self)

    def to_json(self) -> bytes:
        """Canonical JSON bytes (sorted keys, no whitespace); what goes on chain."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        body["hidden_sizes"] = list(self.hidden_sizes)
        body["compression"] = list(self.compression)
        body["aggregation_params"] = dict(self.aggregation_params)
        body["server_optimizer_params"] = dict(self.server_optimizer_params)
        cohort = self.edge_cohort
        body["edge_cohort"] = None if cohort is None else dataclasses.asdict(cohort)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> TaskSpec:
        """Parses canonical JSON back into a spec; raises TaskSpecError on bad input.

        Unknown keys (e.g. the retired ``extra``) are refused by name.
        """
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise TaskSpecError(f"task spec JSON is malformed: {exc}") from exc
        if not isinstance(body, dict):
            raise TaskSpecError(f"task spec JSON must be an object, got {type(body).__name__}")
        return cls.from_mapping(body)

    @classmethod
    def from_mapping(cls, body: Mapping[str, Any]) -> TaskSpec:
        """Builds a spec from a JSON-like object (lists for tuples, objects for parameters).

        Raises:
          TaskSpecError: on unknown or missing keys, or any field that fails validation.
        """
        unknown = sorted(set(body) - TASK_SPEC_FIELDS)
        if unknown:
            raise TaskSpecError(f"task spec has unknown keys {unknown}")
        missing = sorted({"name", "data_schema", "num_features"} - set(body))
        if missing:
            raise TaskSpecError(f"task spec misses required keys {missing}")
        return cls(**body)

    @property
    def per_site_noise(self) -> bool:
        """True if every site solves for its own noise multiplier (``noise_calibration``)."""
        return self.noise_calibration == "per_site"

    def require_fixed_noise(self) -> None:
        """Raises unless the noise multiplier is fixed: a device trains only with its own
        calibrated spec (``fednode.privacy.site_privacy_spec``), never with a per-site one,
        whose ``noise_multiplier`` of 0 would silently train without noise."""
        if self.per_site_noise:
            raise TaskSpecError("this task calibrates DP noise per site: train with "
                                "fednode.privacy.site_privacy_spec(spec, num_examples)")

    @property
    def digest(self) -> bytes:
        """keccak-256 of :meth:`to_json`, the spec digest stored on chain."""
        return digest_bytes(self.to_json())


TASK_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskSpec))
"""Every key a task spec's JSON may hold."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _frozen_params(name: str, raw: object) -> Params:
    """``(name, value)`` pairs sorted by name from a mapping or pairs; numbers only."""
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, tuple | list) and all(isinstance(p, tuple | list) and len(p) == 2
                                                for p in raw):
        items = [tuple(p) for p in raw]
    else:
        raise TaskSpecError(f"{name} must be an object of name -> number, got {raw!r}")
    for key, value in items:
        if not isinstance(key, str) or not key.isidentifier():
            raise TaskSpecError(f"{name} keys must be identifiers, got {key!r}")
        if not _is_number(value):
            raise TaskSpecError(f"{name}.{key} must be a finite number, got {value!r}")
    if len({key for key, _ in items}) != len(items):
        raise TaskSpecError(f"{name} names a parameter twice")
    return tuple(sorted((str(k), v) for k, v in items))


def _freeze(spec: TaskSpec) -> None:
    """Turns JSON-shaped inputs (lists, objects) into the frozen forms the fields declare."""
    for name in ("hidden_sizes", "compression"):
        value = getattr(spec, name)
        if not isinstance(value, tuple | list):
            raise TaskSpecError(f"{name} must be a list, got {value!r}")
        object.__setattr__(spec, name, tuple(value))
    for name in ("aggregation_params", "server_optimizer_params"):
        object.__setattr__(spec, name, _frozen_params(name, getattr(spec, name)))
    for name in _FLOAT_FIELDS:  # 1 and 1.0 are one value: one JSON spelling, one digest
        if _is_int(getattr(spec, name)):
            object.__setattr__(spec, name, float(getattr(spec, name)))
    digest = spec.schema_digest
    if isinstance(digest, str) and digest:
        hex_digits = digest.lower().removeprefix("0x")
        if len(hex_digits) != 64 or set(hex_digits) - set("0123456789abcdef"):
            raise TaskSpecError(f"schema_digest must be 32 bytes of hex, got {digest!r}")
        object.__setattr__(spec, "schema_digest", "0x" + hex_digits)
    cohort = spec.edge_cohort
    if cohort is not None and not isinstance(cohort, EdgeCohort):
        object.__setattr__(spec, "edge_cohort", EdgeCohort.from_mapping(cohort))


def _check_spec(spec: TaskSpec) -> None:
    problems = []
    problems += _type_problems(spec)
    if problems:
        raise TaskSpecError("; ".join(problems))
    if spec.model not in MODEL_KINDS:
        problems.append(f"model must be one of {MODEL_KINDS}, got {spec.model!r}")
    if spec.aggregation not in AGGREGATION_RULES:
        problems.append(f"aggregation must be one of {AGGREGATION_RULES}, got {spec.aggregation!r}")
    for name in ("num_features", "rounds", "min_updates", "local_epochs", "batch_size"):
        if int(getattr(spec, name)) < 1:
            problems.append(f"{name} must be >= 1")
    if spec.mode not in ("sync", "async"):
        problems.append(f"mode must be 'sync' or 'async', got {spec.mode!r}")
    if spec.aggregator_quorum < 1:
        problems.append("aggregator_quorum must be >= 1")
    if min(spec.clip_norm, spec.noise_multiplier, spec.epsilon_budget) < 0 \
            or not 0 < spec.delta < 1:
        problems.append("clip_norm, noise_multiplier, epsilon_budget must be >= 0, delta in (0, 1)")
    problems += _privacy_problems(spec)
    problems += _acceptance_problems(spec)
    problems += _option_problems(spec)
    if spec.max_staleness < 0 or spec.deadline < 0:
        problems.append("max_staleness and deadline must be >= 0")
    if spec.proximal_mu < 0:
        problems.append(f"proximal_mu must be >= 0, got {spec.proximal_mu}")
    if not spec.learning_rate > 0 or not spec.max_update_norm > 0:
        problems.append("learning_rate and max_update_norm must be > 0")
    if isinstance(spec.max_examples, bool) or not isinstance(spec.max_examples, int) \
            or not 1 <= spec.max_examples <= MAX_UINT64:
        problems.append(f"max_examples must be an int in 1..2**64-1, got {spec.max_examples!r}")
    if problems:
        raise TaskSpecError("; ".join(problems))


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "data_schema": (str,), "model": (str,), "aggregation": (str,),
    "mode": (str,), "server_optimizer": (str,), "accountant": (str,), "local_optimizer": (str,),
    "staleness_weighting": (str,), "dp_unit": (str,), "noise_calibration": (str,),
    "acceptance_rule": (str,), "schema_digest": (str,),
}
_INT_FIELDS = ("num_features", "rounds", "min_updates", "max_staleness", "local_epochs",
               "batch_size", "deadline", "seed", "aggregator_quorum", "max_examples",
               "num_classes", "kernel_size", "sequence_length", "normalization_task")
_FLOAT_FIELDS = ("learning_rate", "proximal_mu", "max_update_norm", "metric_floor",
                 "server_learning_rate", "clip_norm", "noise_multiplier", "epsilon_budget",
                 "delta", "site_sampling", "acceptance_quorum")


def _type_problems(spec: TaskSpec) -> list[str]:
    problems = []
    for name, types in _FIELD_TYPES.items():
        if not isinstance(getattr(spec, name), types):
            problems.append(f"{name} must be a string, got {getattr(spec, name)!r}")
    problems += [f"{name} must be an int, got {getattr(spec, name)!r}"
                 for name in _INT_FIELDS if not _is_int(getattr(spec, name))]
    problems += [f"{name} must be a finite number, got {getattr(spec, name)!r}"
                 for name in _FLOAT_FIELDS if not _is_number(getattr(spec, name))]
    if not all(_is_int(size) and size >= 1 for size in spec.hidden_sizes):
        problems.append(f"hidden_sizes must be ints >= 1, got {spec.hidden_sizes!r}")
    if not all(isinstance(step, str) for step in spec.compression):
        problems.append(f"compression must be a list of strings, got {spec.compression!r}")
    return problems


def _option_problems(spec: TaskSpec) -> list[str]:
    problems = []
    if spec.num_classes < 2 or spec.kernel_size < 1 or spec.sequence_length < 0:
        problems.append("num_classes must be >= 2, kernel_size >= 1, sequence_length >= 0")
    if spec.local_optimizer not in LOCAL_OPTIMIZERS:
        problems.append(f"local_optimizer must be one of {LOCAL_OPTIMIZERS}, "
                        f"got {spec.local_optimizer!r}")
    if spec.staleness_weighting not in STALENESS_WEIGHTINGS:
        problems.append(f"staleness_weighting must be one of {STALENESS_WEIGHTINGS}, "
                        f"got {spec.staleness_weighting!r}")
    if spec.normalization_task < 0:
        problems.append(f"normalization_task must be >= 0, got {spec.normalization_task}")
    return problems


def _acceptance_problems(spec: TaskSpec) -> list[str]:
    problems = []
    if spec.acceptance_rule not in ACCEPTANCE_RULES:
        problems.append(f"acceptance_rule must be one of {ACCEPTANCE_RULES}, "
                        f"got {spec.acceptance_rule!r}")
    quorum = spec.acceptance_quorum
    if isinstance(quorum, bool) or not isinstance(quorum, (int, float)) or not 0.5 <= quorum < 1:
        problems.append(f"acceptance_quorum must be a number in [0.5, 1), got {quorum!r}")
    return problems


def _privacy_problems(spec: TaskSpec) -> list[str]:
    problems = []
    if spec.accountant not in ACCOUNTANT_KINDS:
        problems.append(f"accountant must be one of {ACCOUNTANT_KINDS}, got {spec.accountant!r}")
    if spec.dp_unit not in DP_UNITS:
        problems.append(f"dp_unit must be one of {DP_UNITS}, got {spec.dp_unit!r}")
    if not 0 < spec.site_sampling <= 1:
        problems.append(f"site_sampling must be in (0, 1], got {spec.site_sampling!r}")
    calibration = spec.noise_calibration
    if calibration not in NOISE_CALIBRATIONS:
        problems.append(f"noise_calibration must be one of {NOISE_CALIBRATIONS}, "
                        f"got {calibration!r}")
    elif calibration == "per_site" and not (spec.clip_norm > 0 and spec.epsilon_budget > 0
                                            and spec.noise_multiplier == 0):
        problems.append("per_site noise calibration needs clip_norm > 0, epsilon_budget > 0 and "
                        "noise_multiplier 0 (each site solves for its own)")
    return problems


@dataclass(frozen=True)
class TaskRecord:
    """A task as read back from the ledger."""

    task_id: int
    spec: TaskSpec
    spec_digest: bytes
    publisher: str
    state: TaskState
    latest_version: int
    published_block: int


@dataclass(frozen=True)
class LedgerUpdate:
    """One accepted update as the ledger holds it: metadata from storage, payload from calldata."""

    update_id: int
    task_id: int
    base_version: int
    edge: str
    digest: bytes
    num_examples: int
    epsilon_micro: int
    payload: bytes
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True)
class GlobalModelRecord:
    """One committed global model version; version 0 is the task's initial model."""

    task_id: int
    version: int
    digest: bytes
    update_ids: tuple[int, ...]
    aggregator: str
    payload: bytes
    block_number: int
    tx_hash: bytes


@dataclass(frozen=True)
class EvaluationRecord:
    """One edge's evaluation of a final global version, as ``EvaluationLedger`` stores it.

    ``metric_micro`` is the task's metric (accuracy for the heart task) in micro units on the
    edge's own test split of ``num_examples`` rows; ``secondary_micro`` a second metric (AUC),
    None when it is undefined there (a one-class test set).
    """

    evaluation_id: int
    task_id: int
    version: int
    edge: str
    metric_micro: int
    secondary_micro: int | None
    num_examples: int
    block_number: int

    @property
    def metric(self) -> float:
        """The metric as a fraction in [0, 1]."""
        return self.metric_micro / METRIC_SCALE

    @property
    def secondary(self) -> float | None:
        """The second metric as a fraction in [0, 1], or None."""
        return None if self.secondary_micro is None else self.secondary_micro / METRIC_SCALE
