"""Update: the one vocabulary of reasons an update is refused, shared by edge, aggregator, auditor.

Every stage that decodes an update (the edge's intake, the aggregator's round, the auditor's
replay) raises ``UpdateRejectedError`` with one of these reasons, so the same bad delta is
refused for the same reason wherever it is looked at, dense or compressed. ``RejectReason`` is
a ``StrEnum``: a reason compares equal to its string value (``"norm_too_large"``), which is
what travels in logs, HTTP bodies and audit findings.
"""

from __future__ import annotations

import enum

__all__ = ["RejectReason"]


class RejectReason(enum.StrEnum):
    """Why an update is refused.

    Example:
      >>> RejectReason.NORM_TOO_LARGE == "norm_too_large"
      True
    """

    PAYLOAD_TOO_LARGE = "payload_too_large"
    """The payload has more bytes than the stage accepts."""
    BAD_PAYLOAD = "bad_payload"
    """The bytes are not canonical parameter bytes (``fednode.codec``)."""
    DIGEST_MISMATCH = "digest_mismatch"
    """The payload does not hash to the digest recorded for it."""
    WRONG_COMPRESSION = "wrong_compression"
    """A packed layout other than the one the task's ``spec.compression`` prescribes."""
    WRONG_LAYOUT = "wrong_layout"
    """A packed payload whose parts have the wrong dtypes, ranks or lengths."""
    BAD_INDEX = "bad_index"
    """Top-k indices out of range or not strictly increasing."""
    BAD_CODING = "bad_coding"
    """An entropy-coded part (``qz`` / ``idxz``) that is not exactly what the layout implies."""
    BAD_SCALE = "bad_scale"
    """An int8 scale that is not finite and > 0, or a code of -128."""
    WRONG_KEYS = "wrong_keys"
    """Tensor names that are neither the global model's nor a packed layout."""
    WRONG_DTYPE = "wrong_dtype"
    """A dense tensor whose dtype differs from the global model's."""
    WRONG_SHAPE = "wrong_shape"
    """A dense tensor whose shape differs from the global model's."""
    NOT_FINITE = "not_finite"
    """A NaN or an infinity in the (decompressed) delta."""
    NORM_TOO_LARGE = "norm_too_large"
    """The L2 norm of the decompressed delta exceeds ``spec.max_update_norm``."""
    BAD_NUM_EXAMPLES = "bad_num_examples"
    """An example count that is not an integer >= 1."""
    TOO_MANY_EXAMPLES = "too_many_examples"
    """An example count above ``spec.max_examples``."""
    ZERO_PRIVACY_SPEND = "zero_privacy_spend"
    """No declared privacy spend in a DP task (``spec.epsilon_budget`` > 0)."""
