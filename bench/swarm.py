"""Run one command as N processes at once and wait for all: ``swarm.py N OUTPUT -- CMD...``.

The scale-out scenario measures N ``scraper run --redis`` processes as one client: this
small process (run under ``launch.py``) forks them, the first with ``-o OUTPUT`` added (it
exports the crawl's records), and reaps every one, so the CPU time ``launch.py`` gets from
``os.wait4`` is the sum of all N (Linux adds a process's reaped children to its own usage)
and the wall time runs until the last one has exited. The exit status is the worst of
theirs. Standard library only.

``swarm.py --split N OUTPUT -- CMD...`` runs N copies that do not share anything: copy I
gets ``{i}`` in its arguments replaced by I and ``-o OUTPUT.I``; OUTPUT is their files
joined once all have exited (the scale-out scenario's "machine limit": N independent
crawls of one part of the site each).
"""

import os
import sys


def main() -> None:
    arguments = sys.argv[1:]
    split = arguments[:1] == ["--split"]
    copies, output, separator, *command = arguments[split:]
    if separator != "--" or not command:
        sys.exit("usage: swarm.py [--split] N OUTPUT -- COMMAND [ARG ...]")
    pids = []
    for number in range(int(copies)):
        if split:
            argv = [a.replace("{i}", str(number)) for a in command]
            argv += ["-o", f"{output}.{number}"]
        else:
            argv = [*command, "-o", output] if number == 0 else command
        pid = os.fork()
        if pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        pids.append(pid)
    worst = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        worst = code if worst == 0 or (code and abs(code) > abs(worst)) else worst
    if split:
        with open(output, "wb") as joined:
            for number in range(int(copies)):
                with open(f"{output}.{number}", "rb") as part:
                    joined.write(part.read())
    sys.exit(worst)


if __name__ == "__main__":
    main()
