"""Wall time of one `duet generate` call, process start to MP4 on disk (imports, model and
text-encoder load, sampling, decoding and encoding included), and of `duet --help`.

    python benchmarks/generate_time.py [--repeats 3] [--model demo] [-- EXTRA duet ARGS]

Each repeat is a fresh process started through the `duet` console script, as a user's
command is. Targets on a 2-core CPU (issue 22): the default 4 s clip in <= 6 s, faster than
real time; `duet --help` in <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from duet.media import read_mp4

PROMPT = "a red rubber ball bounces on a wooden floor <AUDCAP>low thuds<ENDAUDCAP>"
TARGET_S = 6.0
HELP_TARGET_S = 1.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="demo")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("extra", nargs="*", help="more `duet generate` arguments (after --)")
    args = p.parse_args()
    duet = [str(Path(sys.executable).with_name("duet"))]
    help_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        subprocess.run([*duet, "--help"], check=True, capture_output=True)
        help_times.append(time.perf_counter() - t0)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run([*duet, "generate", args.prompt, "-o", str(out), "--model", args.model,
                            "--quiet", *args.extra], check=True)
            times.append(time.perf_counter() - t0)
        clip = read_mp4(out)
        seconds = clip.frames.shape[0] / clip.fps
    med = statistics.median(times)
    print("| command | repeats | wall s (median) | wall s (min) | vs target |")
    print("|---|---|---|---|---|")
    print(f"| duet generate ({args.model}, {seconds:.2f} s clip, {clip.frames.shape[2]}x"
          f"{clip.frames.shape[1]}) | {args.repeats} | {med:.2f} | {min(times):.2f} | "
          f"{med / TARGET_S:.2f}x of {TARGET_S:.0f} s |")
    hmed = statistics.median(help_times)
    print(f"| duet --help | {args.repeats} | {hmed:.2f} | {min(help_times):.2f} | "
          f"{hmed / HELP_TARGET_S:.2f}x of {HELP_TARGET_S:.0f} s |")


if __name__ == "__main__":
    main()
