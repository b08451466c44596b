"""Where an RL step's time goes: rollouts, rewards (decoding + scoring) and the loss.

    python benchmarks/rl_step_time.py CONFIG.json [--set KEY=VALUE ...] [--steps 1] \
        [--json FILE]

Builds the run exactly as `duet rl CONFIG` does (nothing is written: no checkpoint, no
bundle) and times `--steps` steps of `duet.train.rl.trainer.rl_step`, split by wrapping the
trainer's own phase functions (`collect`, `score`, `optimize`), so what is timed is the
code a real run executes. Prints seconds per phase and its share of the step, and the
projected wall time of the config's `steps`. Step 0's prompts and noise are the run's own;
later steps follow the run's schedule, so two trees or two settings time the same work.
Compare settings side by side on one machine: the host's speed moves from day to day
(docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from duet.train.parallel import init_runtime
from duet.train.rl import trainer
from duet.train.rl.config import RLConfig

PHASES = ("collect", "score", "optimize")
LABELS = {"collect": "rollouts", "score": "rewards", "optimize": "loss + backward + step"}


def timed(seconds: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - t0
    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="an RL config, as `duet rl` takes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, as `duet rl --set` does")
    p.add_argument("--steps", type=int, default=1, help="steps to time (default 1)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = dataclasses.replace(RLConfig.from_file(args.config, args.set), progress=False)
    rt = init_runtime(cfg.device)
    try:
        run = trainer.build_run(cfg, rt)
        seconds: dict[str, float] = defaultdict(float)
        originals = {name: getattr(trainer, name) for name in PHASES}
        for name, fn in originals.items():
            setattr(trainer, name, timed(seconds, name, fn))
        try:
            t0 = time.perf_counter()
            for step in range(args.steps):
                trainer.rl_step(run, step)
            total = (time.perf_counter() - t0) / args.steps
        finally:
            for name, fn in originals.items():
                setattr(trainer, name, fn)
    finally:
        rt.close()
    per_step = {name: seconds[name] / args.steps for name in PHASES}
    print(f"{cfg.batch_size} samples per step ({cfg.prompts_per_step} prompts x {cfg.group_size}), "
          f"{cfg.sampling_steps} sampling steps, {torch.get_num_threads()} threads")
    print("| phase | s/step | share |\n|---|---|---|")
    for name in PHASES:
        print(f"| {LABELS[name]} | {per_step[name]:.1f} | {per_step[name] / total:.0%} |")
    other = total - sum(per_step.values())
    print(f"| other (prompts, advantages, old-policy update) | {other:.1f} | {other / total:.0%} |")
    print(f"| **step** | **{total:.1f}** | 100% |")
    print(f"projected: {cfg.steps} steps = {cfg.steps * total / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"step_s": total, "phases_s": per_step,
                                         "steps": cfg.steps, "threads": torch.get_num_threads()},
                                        indent=1))


if __name__ == "__main__":
    main()
