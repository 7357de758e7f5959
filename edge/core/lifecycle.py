"""Process lifecycle shared by the long-running services: stop on SIGTERM/SIGINT.

The services poll ``StopSignal.is_set()`` in their main loop; the handler only sets
a flag, so in-flight work is finished or handed back by the loop itself (commit,
ack, flush) before the process exits 0.
"""

from __future__ import annotations

import signal
import threading


class StopSignal:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> "StopSignal":
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
