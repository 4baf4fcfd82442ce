"""``RunLock``: one run's claim on a file it writes (the output, the crawl state).

``PATH.lock`` beside the file, held with ``flock`` and naming the holder's PID,
keeps a second run off an output or a state file that a run is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path

from scraper.errors import ScraperError


class RunLock:
    """One run's claim on a file it writes (the output, the crawl state).

    The claim is ``PATH.lock`` beside the file, locked with ``flock`` and holding
    the run's PID; the kernel drops the lock when the process ends, however it
    ends (``kill -9`` too), so a stale lock file never blocks a later run. Only
    files that two runs can share by name are claimed: regular files (or paths
    not created yet) and named pipes, not terminals, devices or stdout's pipe.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def claim(cls, path: str | Path, option: str) -> RunLock | None:
        """Claim ``path`` for this run, or raise naming the run that holds it.

        ``option`` is how the user chooses another path (``-o PATH``). Returns
        ``None`` when ``path`` is not a file to claim, or no lock file can be made
        beside it (a read-only folder); the run then goes on without one.
        """
        real = Path(os.path.realpath(path))
        try:
            mode = real.stat().st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG  # created by this run
        except OSError:
            return None  # /dev/stdout on a pipe resolves to no path at all
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            return None
        lock_path = real.with_name(real.name + ".lock")
        while True:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                by = f"another scraper run (pid {holder})" if holder else "another scraper run"
                raise ScraperError(
                    f"{path} is being written by {by}; wait for it to finish "
                    f"or choose another {option}."
                ) from None
            # The holder before us may have removed the file between our open and
            # our flock: then we hold a lock on a name nobody else sees. Try again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(lock_path, fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (removed first, so no one locks a ghost)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = -1


def _read_pid(fd: int) -> int | None:
    # The holder writes its PID just after taking the lock: give it a moment.
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        time.sleep(0.005)
    return None
