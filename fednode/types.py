"""All stages: the frozen value types that travel between device, edge, chain, aggregator and auditor."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fednode.codec import digest_bytes
from fednode.errors import TaskSpecError

__all__ = [
    "ACCEPTANCE_RULES",
    "AGGREGATION_RULES",
    "DEFAULT_MAX_EXAMPLES",
    "METRIC_SCALE",
    "MODEL_KINDS",
    "NOISE_CALIBRATIONS",
    "NO_METRIC_MICRO",
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
"""``extra["noise_calibration"]``: one ``noise_multiplier`` for every site ("fixed", the default)
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


class TaskState(enum.IntEnum):
    """Derived lifecycle state of a task; mirrors ``TaskRegistry.TaskState`` in Solidity."""

    OPEN = 0
    TRAINING = 1
    FINISHED = 2
    CANCELLED = 3
    EXPIRED = 4


@dataclass(frozen=True)
class TaskSpec:
    """The immutable description of a training job, published on-chain as canonical JSON.

    The contract stores ``keccak256(spec_json)`` and the fields it enforces (rounds,
    min_updates, max_staleness, deadline); the JSON itself is calldata of the publishing
    transaction, so anyone can read it back and check it against the digest.

    Groups: model (model, hidden_sizes, num_features, data_schema); local training
    (local_epochs, batch_size, learning_rate, proximal_mu); aggregation (aggregation, mode
    "sync"/"async", min_updates = buffer size K, max_staleness, aggregator_quorum,
    server_optimizer, server_learning_rate); privacy (clip_norm, noise_multiplier,
    epsilon_budget per site, 0 = none, delta, accountant "rdp"/"pld", and
    ``extra["noise_calibration"]``: "fixed" or "per_site"); compression (chain of
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
    extra: dict[str, Any] = field(default_factory=dict)
    # ---- acceptance gate (issue 13, part 4): how the sites' evaluations decide a version ----
    # "quorum": accepted once more than acceptance_quorum (in [0.5, 1)) of the sites reach
    # metric_floor; "all": every site must (each holds a veto). See ACCEPTANCE_RULES.
    acceptance_rule: str = "quorum"
    acceptance_quorum: float = 0.5

    def __post_init__(self) -> None:
        _check_spec(self)

    def to_json(self) -> bytes:
        """Canonical JSON bytes (sorted keys, no whitespace); what goes on chain."""
        body = asdict(self)
        body["hidden_sizes"] = list(self.hidden_sizes)
        body["compression"] = list(self.compression)
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> TaskSpec:
        """Parses canonical JSON back into a spec; raises TaskSpecError on bad input."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise TaskSpecError(f"task spec JSON must be an object, got {type(body).__name__}")
            body["hidden_sizes"] = tuple(body.get("hidden_sizes", ()))
            body["compression"] = tuple(body.get("compression", ()))
            return cls(**body)
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, TaskSpecError):
                raise
            raise TaskSpecError(f"task spec JSON is malformed: {exc}") from exc

    @property
    def per_site_noise(self) -> bool:
        """True if every site solves for its own noise multiplier (``noise_calibration``)."""
        return self.extra.get("noise_calibration", "fixed") == "per_site"

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


def _check_spec(spec: TaskSpec) -> None:
    problems = []
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
    if min(spec.clip_norm, spec.noise_multiplier, spec.epsilon_budget) < 0 or not 0 < spec.delta < 1:
        problems.append("clip_norm, noise_multiplier, epsilon_budget must be >= 0, delta in (0, 1)")
    problems += _privacy_problems(spec)
    problems += _acceptance_problems(spec)
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
    calibration = spec.extra.get("noise_calibration", "fixed")
    if calibration not in NOISE_CALIBRATIONS:
        problems.append(f"extra.noise_calibration must be one of {NOISE_CALIBRATIONS}, "
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
