"""Daemon threads for work that must not hold the event loop: slow patterns, callbacks."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

THREAD_IDLE = 30.0
"""Seconds an idle thread waits for work before it ends."""


class DaemonThreads:
    """Threads for work that must not run on the event loop, started as needed and reused.

    They are daemon threads, which the interpreter does not wait for at exit (it
    joins ``concurrent.futures``' threads, so a callback that never returns kept a
    stopped run alive). A call that never returns keeps its thread; the next call
    then finds no idle thread and starts one, so the crawl never runs out of them.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call no other call has claimed

    def submit(self, call: Callable[[], None]) -> None:
        """Run ``call`` in an idle thread, or a new one."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._calls.put(call)
                return
        threading.Thread(target=self._serve, args=(call,), name=self._name, daemon=True).start()

    def _serve(self, call: Callable[[], None] | None) -> None:
        while call is not None:
            call()
            call = self._next()

    def _next(self) -> Callable[[], None] | None:
        with self._lock:
            self._idle += 1
        try:
            return self._calls.get(timeout=THREAD_IDLE)
        except queue.Empty:
            with self._lock:
                try:  # a call put in while we gave up waiting is ours all the same
                    return self._calls.get_nowait()
                except queue.Empty:
                    self._idle -= 1
                    return None
