"""Update: the thing that travels from device to edge to chain, and the one check on it.

An update is a delta of the global model, dense or packed (``packing``: int8, top-k, top-k +
int8; ``entropy``: the lossless coding of their codes and indices). Every stage that receives
one (the edge's intake, the aggregator's round, the auditor's replay) calls ``check_update``,
which decodes it, checks it against the task and the global model, and refuses it with one
``RejectReason`` vocabulary. ``envelope`` is how an update travels from a device to its edge
(the signed envelope, its exact signed bytes, its JSON), ``evaluation`` its twin for a signed
per-site evaluation, and ``signing`` the device keys and signatures over both; the device side
(``fednode.site``) and the edge (``edge_server``) share them, so neither imports the other.
"""

from fednode.update.check import (
    CheckedUpdate,
    TensorSpec,
    check_num_examples,
    check_payload,
    check_privacy_spend,
    check_update,
    expected_layout,
    is_finite_model,
    l2_norm,
    template_of,
)
from fednode.update.reasons import RejectReason

__all__ = [
    "CheckedUpdate",
    "RejectReason",
    "TensorSpec",
    "check_num_examples",
    "check_payload",
    "check_privacy_spend",
    "check_update",
    "expected_layout",
    "is_finite_model",
    "l2_norm",
    "template_of",
]
