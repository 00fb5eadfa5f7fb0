"""Edge: structured logging, one JSON object per line (time, level, logger, message, extras)."""

from __future__ import annotations

import json
import logging
import time

__all__ = ["JsonLineFormatter", "configure_logging"]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonLineFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra=`` fields become keys.

    Example:
      >>> record = logging.LogRecord("edge", logging.INFO, "", 0, "hi %s", ("x",), None)
      >>> json.loads(JsonLineFormatter().format(record))["message"]
      'hi x'
    """

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def configure_logging(*, json_lines: bool, verbose: bool) -> None:
    """Sets up the root logger for the ``edge_server`` process."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
