"""Edge: token buckets per device and per peer address; over the rate is ``429 rate_limited``.

The peer buckets are spent before a request's body is parsed or any signature verified, so a
flood of badly signed requests costs the edge no signature checks past the burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fednode.errors import UpdateRejectedError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by device id: ``burst`` requests at once, then ``rate_per_s``.

    Args:
      rate_per_s: tokens added per second (0 disables limiting).
      burst: bucket size.
      clock: monotonic time source.
      subject: what a key names, for the refusal's message ("device", "peer").

    Example:
      >>> limiter = RateLimiter(rate_per_s=1.0, burst=2, clock=lambda: 0.0)
      >>> limiter.take("dev-1"); limiter.take("dev-1")
      >>> limiter.take("dev-1")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      fednode.errors.UpdateRejectedError: rate_limited: device dev-1 is over 1 requests/s ...
    """

    def __init__(
        self, *, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
        subject: str = "device",
    ) -> None:
        self._subject = subject
        self._rate = rate_per_s
        self._burst = float(max(burst, 1))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, device_id: str) -> None:
        """Spends one token of ``device_id``.

        Raises:
          UpdateRejectedError: ``rate_limited`` when the bucket is empty; ``retry_after_s``
            on the error says when the next token arrives.
        """
        if self._rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(device_id, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[device_id] = (tokens, now)
                error = UpdateRejectedError(
                    "rate_limited",
                    f"{self._subject} {device_id} is over {self._rate:g} requests/s "
                    f"(burst {self._burst:g}); retry later",
                )
                error.retry_after_s = (1.0 - tokens) / self._rate  # type: ignore[attr-defined]
                raise error
            self._buckets[device_id] = (tokens - 1.0, now)
