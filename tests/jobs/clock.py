"""A clock the test moves, for real ``serve`` processes: libfaketime.

The server runs with libfaketime preloaded and ``FAKETIME_TIMESTAMP_FILE`` pointing at a
file this helper rewrites with an offset ("+N" seconds). The offset is re-read every second
(``FAKETIME_CACHE_DURATION``; re-reading it on every call makes the server crawl), and
the monotonic clock is left alone, so asyncio's sleeps,
timeouts and daphne keep real time while the wall clock (``timezone.now()``) jumps.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from tests.conftest import need

CACHE_SECONDS = 1
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


class FakeClock:
    def __init__(self, path: Path) -> None:
        need(LIBFAKETIME.exists(),
             f"libfaketime is not at {LIBFAKETIME} (apt-get install faketime)")
        self.path = path
        self.path.write_text("+0\n")

    @property
    def env(self) -> dict[str, str]:
        """The server's environment. Its ``PATH`` is an empty folder: programs it would
        start (the sandbox probe's bwrap) fail under libfaketime, and these tests run no
        tools, so the probe answers "not found" at once instead."""
        empty = self.path.parent / "empty-path"
        empty.mkdir(exist_ok=True)
        return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.path),
                "FAKETIME_CACHE_DURATION": str(CACHE_SECONDS), "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "FAKETIME_DISABLE_SHM": "1", "PATH": str(empty)}

    def set(self, when: dt.datetime) -> None:
        """Make the servers' wall clock read ``when`` now (and run on from there). Returns
        once the servers' cached offset has expired, so their next look sees it."""
        real = dt.datetime.now(dt.timezone.utc)
        self.path.write_text(f"+{round((when - real).total_seconds())}\n")
        time.sleep(CACHE_SECONDS + 1.5)


def minute_start(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)
