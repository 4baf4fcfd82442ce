"""Run a command and write its own resource usage as JSON: ``launch.py RESULT TIMEOUT -- CMD...``.

Why a launcher: Linux counts, in a process's peak RSS (``ru_maxrss``), the high-water
mark of the memory it had before ``exec()``, and a child forked (or vforked, as
``subprocess`` does) from the driver starts out with all of the driver's memory. So the
driver starts this small interpreter (``python -I -S``, a few MB), which forks the
command itself: the command's peak RSS then has a floor of a few MB, below any Python
process's own. Wall time runs from just before the fork to the reaping; CPU time and
peak RSS are the command's own, from ``os.wait4``. The command is killed after TIMEOUT
seconds. Standard library only; nothing is imported that the command could notice.
"""

import json
import os
import signal
import sys
import time


def main() -> None:
    result, timeout, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: launch.py RESULT TIMEOUT -- COMMAND [ARG ...]")
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    signal.signal(signal.SIGALRM, lambda signum, frame: os.kill(pid, signal.SIGKILL))
    signal.alarm(max(1, round(float(timeout))))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    signal.alarm(0)
    report = {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
        "exit_code": os.waitstatus_to_exitcode(status),
    }
    with open(result, "w") as out:
        json.dump(report, out)


if __name__ == "__main__":
    main()
