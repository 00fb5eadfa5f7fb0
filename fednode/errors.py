"""All stages: the exception tree every fednode stage raises.

One root, ``FednodeError``; builtins are mixed in where a caller would naturally catch them::

    FednodeError
    ├── FednodeValueError (ValueError)
    │   ├── CodecError               bad canonical bytes, unsupported dtype, digest mismatch
    │   ├── UpdateRejectedError      shape/dtype/finite/norm checks on a delta failed
    │   ├── GlobalModelNotFiniteError  a built global model holds NaN or infinity
    │   ├── TaskSpecError            a task spec that cannot be published or used
    │   └── SchemaError              a data schema is malformed; the message names the field
    ├── DataError                    a data set is missing or its checksum does not match
    ├── ChainError                   talking to a chain node failed
    │   ├── ContractRevertError      a transaction or call reverted; carries the decoded custom error
    │   └── ChainTimeoutError        a receipt or a block did not arrive in time
    ├── NetworkError                 starting/stopping local validator nodes failed
    ├── EdgeError                    an edge server refused or failed a request
    └── AuditError                   the ledger could not be read back for verification
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditError",
    "ChainError",
    "ChainTimeoutError",
    "CodecError",
    "ContractRevertError",
    "DataError",
    "EdgeError",
    "FednodeError",
    "FednodeValueError",
    "GlobalModelNotFiniteError",
    "NetworkError",
    "SchemaError",
    "TaskSpecError",
    "UpdateRejectedError",
]


class FednodeError(Exception):
    """Root of every error raised by fednode and edge_server."""


class FednodeValueError(FednodeError, ValueError):
    """A value handed to fednode is malformed."""


class CodecError(FednodeValueError):
    """Canonical parameter bytes could not be encoded, decoded or verified."""


class UpdateRejectedError(FednodeValueError):
    """A model delta failed validation; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class GlobalModelNotFiniteError(FednodeValueError):
    """A global model built from checked updates holds NaN or infinity; it must not be committed."""


class TaskSpecError(FednodeValueError):
    """A task spec is inconsistent or incomplete."""


class SchemaError(FednodeValueError):
    """A data schema is malformed or inconsistent; the message names the offending field."""


class DataError(FednodeError):
    """A data set is missing, or its checksum does not match the pinned one."""


class ChainError(FednodeError):
    """A chain node could not be reached or answered unexpectedly."""


class ContractRevertError(ChainError):
    """A contract call reverted; ``name`` and ``args`` are the decoded custom error."""

    def __init__(self, name: str, args: dict[str, Any] | None = None, raw: str = "") -> None:
        self.name = name
        self.args_by_name = dict(args or {})
        self.raw = raw
        rendered = ", ".join(f"{k}={v!r}" for k, v in self.args_by_name.items())
        super().__init__(f"{name}({rendered})" if name else f"reverted: {raw}")


class ChainTimeoutError(ChainError):
    """A receipt, a block or a peer did not show up in time."""


class NetworkError(FednodeError):
    """Local validator nodes could not be started, reached or stopped."""


class EdgeError(FednodeError):
    """An edge server refused or failed a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class AuditError(FednodeError):
    """The ledger could not be read back completely enough to verify it."""
