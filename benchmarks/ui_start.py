"""How long `duet ui` takes to start: process launch until the page answers (the model then
loads in the background, and the first Generate waits for it if it is not done).

    python benchmarks/ui_start.py [--repeats 3] [-- EXTRA duet ui ARGS]

Each repeat is a fresh process, as a user's command is. Target: the page in < 10 s on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

TARGET_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def one_start(extra: list[str], timeout: float = 120.0) -> float:
    """Seconds from launching `duet ui` until its page answers with HTTP 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "duet", "ui", "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while not answers(url):
            if proc.poll() is not None:
                raise SystemExit(f"duet ui exited with code {proc.returncode} before serving")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"duet ui did not answer within {timeout:.0f} s")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("extra", nargs="*", help="more `duet ui` arguments, after --")
    args = p.parse_args()
    times = [one_start(args.extra) for _ in range(args.repeats)]
    median = statistics.median(times)
    print(f"duet ui: page answers after {median:.2f} s (median of {len(times)}: "
          f"{', '.join(f'{t:.2f}' for t in times)}) on {os.cpu_count()} CPUs; "
          f"target < {TARGET_S:g} s: {'met' if max(times) < TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
