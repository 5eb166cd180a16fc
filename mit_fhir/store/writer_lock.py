"""One SQLite writer at a time, across threads and processes, handed over without sleeping.

SQLite allows one writer; a connection that finds the database locked retries in its busy
handler, sleeping 1, 2, 5, ... up to 100 ms between tries. Under concurrent submissions the
lock is mostly free while every waiter sleeps: throughput collapses and latency reaches
seconds (benchmarks/bench_http.py). This lock queues writers instead: a thread lock within the
process, then an flock on a file beside the database across processes, both taken before a
transaction's first write and released after it ends. SQLite's own locking still guarantees
correctness; this only orders the writers of processes that use it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from typing import Any

from mit_fhir.errors import ServiceUnavailable

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_LOCKS: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked process (a gunicorn worker) starts unlocked with a file of its own: flock is per
    # open file, so an inherited descriptor would let parent and child hold the lock at once.
    for lock in list(_LOCKS):
        lock._forget()


os.register_at_fork(after_in_child=_after_fork)


class WriterLock:
    """Held by at most one transaction of all the processes that share the database file."""

    def __init__(self, database_path: str, timeout: float = 5.0) -> None:
        self.path = f"{database_path}.writer-lock"
        self.timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._state = threading.local()  # per thread: transaction depth, lock held
        _LOCKS.add(self)

    def _forget(self) -> None:
        self._thread_lock = threading.Lock()
        self._state = threading.local()
        self._fd = None

    def _file(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # the database's directory is gone, read-only or full
                raise ServiceUnavailable("the database is unavailable; retry later") from None
        return self._fd

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise ServiceUnavailable("the database is busy; retry later")
        try:
            fd, pause = self._file(), 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ServiceUnavailable("the database is busy; retry later") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        fcntl.flock(self._file(), fcntl.LOCK_UN)
        self._thread_lock.release()

    def before_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        """SQLAlchemy before_cursor_execute hook: within a Store transaction of this thread,
        take the lock at the first write."""
        if statement.lstrip()[:7].upper().startswith(WRITES):
            self.hold()

    def hold(self) -> None:
        """Within a Store transaction of this thread, take the lock now (if not yet held) and
        keep it until the transaction ends."""
        state = self._state
        if getattr(state, "depth", 0) and not getattr(state, "held", False):
            self.acquire()
            state.held = True

    def begin(self) -> None:
        """A Store transaction starts in this thread (they may nest)."""
        self._state.depth = getattr(self._state, "depth", 0) + 1

    def end(self) -> None:
        """After the thread's outermost transaction committed or rolled back: hand it on."""
        state = self._state
        state.depth -= 1
        if state.depth == 0 and getattr(state, "held", False):
            state.held = False
            self.release()
