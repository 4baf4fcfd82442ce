"""Benchmark ``scraper run`` against Scrapy and a bare aiohttp loop, on a generated site.

Run from anywhere, with any Python 3.10+ (the driver needs only the standard library)::

    python3 bench/run.py --scenario all --rounds 3 --pages 2000

It makes bench/.venv (Scrapy, aiohttp, py-spy) when missing, installs nginx with
apt-get when missing, works in a temp folder, and prints (and saves under
bench/results/) the tables. See bench/README.md for what each scenario measures.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from scenarios import SCENARIOS, Bench  # noqa: E402

VENV = BENCH / ".venv"
REQUIREMENTS = BENCH / "requirements.txt"
RESULTS = BENCH / "results"
DEFAULT_SCRAPER_PYTHONS = (BENCH.parent / ".venv" / "bin" / "python", Path("/work/venv/bin/python"))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; exit 1 if any run failed its checks."""
    args = _parser().parse_args(argv)
    command_line = shlex.join(sys.orig_argv)
    print(f"$ {command_line}", flush=True)
    scraper_python = Path(args.scraper_python)
    _check_scraper(scraper_python)
    bench_python = ensure_bench_venv()
    names = [n for n in SCENARIOS if n != "profile"] if args.scenario == "all" else [args.scenario]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with tempfile.TemporaryDirectory(prefix="scraper-bench-") as temp:
        work = Path(temp)
        bench = Bench(
            scraper_python=scraper_python,
            bench_python=bench_python,
            work=work,
            rounds=args.rounds,
            pages=args.pages,
            seed=args.seed,
            scale_urls=args.scale_urls,
        )
        bench.lines.append(f"$ {command_line}")
        for line in _machine(scraper_python, bench_python, started):
            bench.say(line)
        for name in names:
            SCENARIOS[name](bench)
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="scraper-bench-kept-"))
            shutil.copytree(work, kept, dirs_exist_ok=True)
            bench.say(f"the temp folder is copied to {kept}")
    if bench.goals:
        bench.say()
        bench.say("## Goals")
        for verdict in bench.goals:
            bench.say(f"- {verdict}")
    if bench.failures:
        bench.say()
        bench.say("## FAILED runs (wrong records or exit code)")
        for failure in bench.failures:
            bench.say(f"- {failure}")
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.scenario}.txt"
    saved.write_text("\n".join(bench.lines) + "\n", encoding="utf-8")
    print(f"\n(saved to {saved})")
    return 1 if bench.failures else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scraper-python",
        default=_default_scraper_python(),
        metavar="PATH",
        help="the Python that has scraper installed (default: %(default)s)",
    )
    parser.add_argument(
        "--scenario", choices=[*SCENARIOS, "all"], default="all", help="default: all (not profile)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, median taken (default: 3)")
    parser.add_argument("--pages", type=int, default=2000, help="board pages (default: 2000)")
    parser.add_argument(
        "--scale-urls",
        type=int,
        default=100_000,
        help="URLs of the largest scale run; also runs 10%% and 50%% of it (default: 100000)",
    )
    parser.add_argument("--seed", type=int, default=20240501, help="the site's random seed")
    parser.add_argument("--keep", action="store_true", help="keep a copy of the temp folder")
    return parser


def _default_scraper_python() -> str:
    for python in DEFAULT_SCRAPER_PYTHONS:
        if python.exists():
            return str(python)
    return "python3"


def _check_scraper(python: Path) -> None:
    done = subprocess.run([str(python), "-c", "import scraper"], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"error: {python} cannot import scraper: {done.stderr.strip().splitlines()[-1:]}")


def ensure_bench_venv() -> Path:
    """bench/.venv's python, the venv made (or brought up to requirements.txt) if needed."""
    python = VENV / "bin" / "python"
    stamp = VENV / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        print(f"making the bench virtualenv {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"installing {REQUIREMENTS} into it ...", flush=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return python


VERSIONS = """\
import sys, importlib.metadata as metadata
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"
print("Python", sys.version.split()[0], *(f"{name} {version(name)}" for name in sys.argv[1:]))
"""


def _machine(scraper_python: Path, bench_python: Path, started: str) -> list[str]:
    """The header lines: date, machine, interpreters and versions, and which scraper."""

    def output(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True, cwd=tempfile.gettempdir())
        lines = (done.stdout or done.stderr).strip().splitlines()
        return "?" if done.returncode else (lines[-1] if lines else "")

    model = "?"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    package = output([str(scraper_python), "-c", "import scraper; print(scraper.__path__[0])"])
    source = f"scraper imported from {package}"
    if Path(package).resolve() == (BENCH.parent / "scraper").resolve():
        git = ["git", "-C", str(BENCH.parent)]
        commit = output([*git, "rev-parse", "--short", "HEAD"])
        changed = output([*git, "status", "--porcelain", "--", "scraper"])
        source += f" (commit {commit}{', with uncommitted changes' if changed else ''})"
    libraries = ["scraper", "aiohttp", "httpx", "regex", "PyYAML"]
    clients = ["scrapy", "twisted", "aiohttp", "crawlee", "impit", "pycurl", "curl_cffi"]
    return [
        f"date: {started}",
        f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({model})",
        f"scraper's python: {scraper_python}: "
        + output([str(scraper_python), "-c", VERSIONS, *libraries]),
        source,
        f"bench venv: {bench_python}: " + output([str(bench_python), "-c", VERSIONS, *clients]),
        f"nginx: {output([nginx, '-v']) if nginx else 'not installed yet'}",
    ]


if __name__ == "__main__":
    sys.exit(main())
