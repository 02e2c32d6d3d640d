"""Ctrl-C during training, handled between steps.

Python raises KeyboardInterrupt at whatever bytecode runs when SIGINT arrives; if that is a
destructor or a finalizer (``__del__``, weakref callbacks), the exception is printed as
"Exception ignored" and training simply goes on. So `ghuda train` installs `StopRequest`: the
first SIGINT only sets a flag, which the training loop checks after every step and turns into
KeyboardInterrupt at that safe point; a second SIGINT raises at once (e.g. during a long
evaluation).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class StopRequest:
    """Context manager: SIGINT sets `requested`; a second SIGINT raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested (called between steps)."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
