"""Ctrl-C in `ghuda train` is turned into KeyboardInterrupt between steps (a first SIGINT), or
at once (a second one); the previous handler comes back afterwards."""

from __future__ import annotations

import os
import signal

import pytest

from ghuda.engine.interrupt import StopRequest


def test_first_sigint_only_requests_a_stop_second_interrupts():
    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        stop.check()  # nothing requested yet
        os.kill(os.getpid(), signal.SIGINT)  # handled synchronously in the main thread
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
