"""Auditor: a loss-threshold membership-inference audit of a trained model (pure functions).

The attack (Yeom et al., 2018) guesses "member" when a record's loss under the model is at most a
threshold. Sweeping the threshold gives a ROC curve of true-positive rate (members caught) against
false-positive rate (non-members wrongly flagged). A model trained with (epsilon, delta)-DP
bounds every such attack: ``TPR <= e^epsilon * FPR + delta`` at every threshold (Kairouz et al.,
2015), so an audit that finds a point above the bound (beyond sampling error) disproves the
claimed epsilon. Everything here takes and returns plain values; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MembershipAudit",
    "dp_bound_violations",
    "empirical_epsilon",
    "example_losses",
    "loss_threshold_audit",
    "sampling_slack",
]

DEFAULT_FPR_LEVELS = (0.01, 0.05, 0.1)


@dataclass(frozen=True)
class MembershipAudit:
    """The attack's ROC curve and its summary.

    Attributes:
      fpr: false-positive rates of every threshold, ascending (starts at 0, ends at 1).
      tpr: the matching true-positive rates.
      tpr_at_fpr: TPR at each requested FPR level (best threshold whose FPR <= the level).
      auc: area under the ROC curve (0.5 = the attack learns nothing).
      advantage: max over thresholds of TPR - FPR (membership advantage).
      num_members: member records audited.
      num_nonmembers: non-member records audited.
    """

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    tpr_at_fpr: dict[float, float]
    auc: float
    advantage: float
    num_members: int
    num_nonmembers: int


def example_losses(params: Any, x: Any, y: Any) -> np.ndarray:
    """Per-record binary cross-entropy of a fednode model (logits from ``apply_model``).

    Example:
      >>> import jax
      >>> from fednode.device.model import init_params
      >>> p = init_params(jax.random.key(0), model="logreg", num_features=2)
      >>> example_losses(p, np.zeros((3, 2), np.float32), np.ones(3)).shape
      (3,)
    """
    from fednode.device.model import apply_model

    logits = np.asarray(apply_model(params, np.asarray(x, np.float32)), np.float64).reshape(-1)
    labels = np.asarray(y, np.float64).reshape(-1)
    return np.logaddexp(0.0, logits) - labels * logits  # log(1 + e^z) - y z, stable


def loss_threshold_audit(
    member_losses: Sequence[float] | np.ndarray,
    nonmember_losses: Sequence[float] | np.ndarray,
    *,
    fpr_levels: Sequence[float] = DEFAULT_FPR_LEVELS,
) -> MembershipAudit:
    """Runs the loss-threshold attack: "member" iff loss <= t, for every threshold t.

    Args:
      member_losses: losses of records the model was trained on.
      nonmember_losses: losses of held-out records from the same population.
      fpr_levels: FPR levels at which to report the TPR.

    Returns:
      The MembershipAudit.

    Raises:
      ValueError: an empty or non-finite loss list, or an FPR level outside [0, 1].

    Example:
      >>> audit = loss_threshold_audit([0.1, 0.2, 0.3], [0.5, 0.6, 0.7], fpr_levels=(0.0,))
      >>> audit.tpr_at_fpr[0.0], audit.auc, audit.advantage
      (1.0, 1.0, 1.0)
    """
    members, others = _checked(member_losses), _checked(nonmember_losses)
    if any(not 0.0 <= level <= 1.0 for level in fpr_levels):
        raise ValueError(f"FPR levels must be in [0, 1], got {tuple(fpr_levels)}")
    thresholds = np.unique(np.concatenate([members, others]))
    tpr = np.concatenate([[0.0], _rate_at_most(members, thresholds)])
    fpr = np.concatenate([[0.0], _rate_at_most(others, thresholds)])
    at_level = {float(lv): float(tpr[fpr <= lv + 1e-12].max()) for lv in fpr_levels}
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return MembershipAudit(
        fpr=tuple(float(v) for v in fpr), tpr=tuple(float(v) for v in tpr), tpr_at_fpr=at_level,
        auc=auc, advantage=float(np.max(tpr - fpr)), num_members=members.size,
        num_nonmembers=others.size,
    )


def sampling_slack(num_records: int, *, confidence: float = 0.99) -> float:
    """Uniform error of an empirical rate over every threshold at once (DKW inequality).

    With probability ``confidence`` the empirical TPR (or FPR) curve is within this distance of
    the true one at every threshold, so a bound check does not flag sampling noise.

    Example:
      >>> round(sampling_slack(100), 3)
      0.163
    """
    if num_records < 1 or not 0.0 < confidence < 1.0:
        raise ValueError("need at least one record and confidence in (0, 1)")
    return math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * num_records))


def dp_bound_violations(
    audit: MembershipAudit, *, epsilon: float, delta: float, confidence: float | None = None
) -> list[tuple[float, float]]:
    """ROC points (FPR, TPR) that break the DP bound ``TPR <= e^eps * FPR + delta``.

    Both sides are checked (the mirror attack "member iff loss > t" must obey
    ``1 - FPR <= e^eps * (1 - TPR) + delta``). With ``confidence`` each rate gets the benefit of
    its sampling error (:func:`sampling_slack`, both sides at ``confidence``): a point is
    reported only when the bound fails for every pair of true rates within that error. An empty
    list means the audit is consistent with the claimed (epsilon, delta).

    Example:
      >>> audit = loss_threshold_audit([0.1, 0.2], [0.5, 0.6])
      >>> dp_bound_violations(audit, epsilon=1.0, delta=1e-5)
      [(0.0, 0.5), (0.0, 1.0), (0.5, 1.0)]
      >>> dp_bound_violations(audit, epsilon=1.0, delta=1e-5, confidence=0.9)
      []
    """
    if epsilon < 0 or not 0.0 <= delta < 1.0:
        raise ValueError(f"need epsilon >= 0 and delta in [0, 1), got {epsilon}, {delta}")
    scale = math.exp(epsilon)
    s_t = 0.0 if confidence is None else sampling_slack(audit.num_members, confidence=confidence)
    s_f = 0.0 if confidence is None else sampling_slack(audit.num_nonmembers, confidence=confidence)
    out = []
    for fpr, tpr in zip(audit.fpr, audit.tpr, strict=True):
        above = tpr - s_t > scale * min(fpr + s_f, 1.0) + delta
        mirror = (1.0 - fpr) - s_f > scale * min(1.0 - tpr + s_t, 1.0) + delta
        if above or mirror:
            out.append((fpr, tpr))
    return out


def empirical_epsilon(
    audit: MembershipAudit, *, delta: float, confidence: float | None = None
) -> float:
    """The smallest epsilon the audit is consistent with, at ``delta`` (a lower bound on the
    model's true epsilon): ``max log((TPR - delta) / FPR)`` over the ROC points and their mirror
    images, each rate moved by its sampling error first when ``confidence`` is given.

    Example:
      >>> audit = loss_threshold_audit([0.2, 0.25, 0.9], [0.1, 0.3, 0.5])
      >>> round(empirical_epsilon(audit, delta=0.0), 3)
      0.693
    """
    s_t = 0.0 if confidence is None else sampling_slack(audit.num_members, confidence=confidence)
    s_f = 0.0 if confidence is None else sampling_slack(audit.num_nonmembers, confidence=confidence)
    best = 0.0
    for fpr, tpr in zip(audit.fpr, audit.tpr, strict=True):
        for hit, false in ((tpr - s_t, fpr + s_f), ((1.0 - fpr) - s_f, (1.0 - tpr) + s_t)):
            if hit - delta > 0.0:
                best = max(best, math.inf if false <= 0.0 else math.log((hit - delta) / false))
    return best


def _checked(losses: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(losses, np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("losses must be a non-empty list of finite numbers")
    return np.sort(values)


def _rate_at_most(sorted_losses: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of ``sorted_losses`` that are <= each threshold."""
    return np.searchsorted(sorted_losses, thresholds, side="right") / sorted_losses.size
