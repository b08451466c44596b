"""Wall time of one `duet generate` call, process start to MP4 on disk (imports, model and
text-encoder load, sampling, decoding and encoding included).

    python benchmarks/generate_time.py [--repeats 3] [--model demo] [-- EXTRA duet ARGS]

Each repeat is a fresh process, as a user's command is. The target for the default
model: a 4 s clip in <= 15 s on a 2-core CPU.
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
TARGET_S = 15.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="demo")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("extra", nargs="*", help="more `duet generate` arguments (after --)")
    args = p.parse_args()
    duet = [sys.executable, "-m", "duet"]
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
    print("| model | clip | repeats | wall s (median) | wall s (min) | vs 15 s target |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.model} | {seconds:.2f} s, {clip.frames.shape[2]}x{clip.frames.shape[1]} | "
          f"{args.repeats} | {med:.1f} | {min(times):.1f} | {med / TARGET_S:.2f}x |")


if __name__ == "__main__":
    main()
