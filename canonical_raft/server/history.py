"""The last minutes of a server, one sample a second, for the status
page's chart: requests answered, their latency, and commits (the change of
the commit index, which counts every node's writes)."""

from __future__ import annotations

import collections
import time
from typing import Any, Callable, Optional

__all__ = ["History"]

SECONDS = 300   # the chart's width: five minutes


class History:
    """Per-second samples, kept for ``seconds``. ``record()`` and
    ``tick()`` are called on the server's event loop thread only."""

    def __init__(self, commit_index: Callable[[], int], seconds: int = SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._commit_index = commit_index
        self._clock = clock
        self._samples: collections.deque[tuple[int, int, int, float, float]] = \
            collections.deque(maxlen=seconds)
        self._count = 0
        self._total = 0.0
        self._max = 0.0
        self._last_commit: Optional[int] = None

    def record(self, seconds: float) -> None:
        """One request answered, in ``seconds``."""
        self._count += 1
        self._total += seconds
        if seconds > self._max:
            self._max = seconds

    def tick(self) -> None:
        """Close the current second's sample (called once a second)."""
        commit = self._commit_index()
        commits = 0 if self._last_commit is None else max(0, commit - self._last_commit)
        self._last_commit = commit
        mean = self._total / self._count if self._count else 0.0
        self._samples.append((int(self._clock()), self._count, commits, mean, self._max))
        self._count, self._total, self._max = 0, 0.0, 0.0

    def as_json(self) -> dict[str, Any]:
        """The samples, oldest first, as columns (latencies in milliseconds)."""
        samples = list(self._samples)
        return {
            "interval": 1,
            "time": [s[0] for s in samples],
            "requests": [s[1] for s in samples],
            "commits": [s[2] for s in samples],
            "latency_ms_mean": [round(s[3] * 1000, 3) for s in samples],
            "latency_ms_max": [round(s[4] * 1000, 3) for s in samples],
        }
