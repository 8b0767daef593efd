"""Stopping on a signal: SIGINT (Ctrl-C) and SIGTERM (``kill``, a batch scheduler, a container's stop) alike.

Training takes either between two steps, writes its checkpoint and returns how it stopped (:data:`STOPPED`);
everywhere else the command line turns SIGTERM into :class:`Terminated`, as Python turns SIGINT into
``KeyboardInterrupt``, so that whatever stops cleanly on Ctrl-C stops so on SIGTERM too. A command stopped
by a signal exits with the shells' code for it, 128 + its number (:func:`exit_code`: 130, 143).
"""

from __future__ import annotations

import contextlib
import signal
import threading

#: How a training stopped by each signal says so (``TrainResult.stopped``).
STOPPED = {"interrupted": signal.SIGINT, "terminated": signal.SIGTERM}


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: a KeyboardInterrupt, so that the cleanup written for Ctrl-C runs for it too."""


class StopSignals:
    """Within the block, SIGINT and SIGTERM record themselves in ``signal`` (the first one to come) instead of
    interrupting: the work polls :attr:`raised` where it can stop cleanly. Only in the main thread (the only one
    that Python lets set handlers); elsewhere the signals keep their usual effect."""

    def __enter__(self):
        self.signal, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOPPED.values():
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is None:
            self.signal = signum

    @property
    def raised(self) -> bool:
        return self.signal is not None

    @property
    def stopped(self) -> str:
        """How the work stopped: ``"terminated"`` after SIGTERM, else ``"interrupted"`` (also when another process
        of a distributed run got the signal and this one stopped with it)."""
        return "terminated" if self.signal == signal.SIGTERM else "interrupted"

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # None: not set from Python
        return False


@contextlib.contextmanager
def terminate_raises():
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (a no-op in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def exit_code(stopped: str) -> int:
    """The exit code of a command stopped by the signal of ``stopped`` (a key of :data:`STOPPED`)."""
    return 128 + STOPPED[stopped]
