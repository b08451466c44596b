"""Float32 forward time of the joint model on a CPU, its achieved FLOP/s against the
machine's measured matmul peak, and (with --baseline) the ratio to another checkout's
forward on the same weights and inputs.

    python benchmarks/forward_speed.py [--threads 1] [--repeats 5] [--compile] \
        [--baseline OTHER_CHECKOUT/src]

Configs (issue 22's sizes): dim 512 (8 pairs of blocks) and dim 1024 (4 pairs), each with
2,048 video + 250 audio tokens and 64 text tokens. FLOPs are counted by
`torch.utils.flop_counter` with the math attention kernel (whose matmuls it can see); the
peak is a 2048 x 1024 x 4096 float32 matmul in the same process. With --baseline, each
forward alternates with the other tree's (a subprocess with that `src` first on the path),
both loading the same state dict and inputs from a temporary file, so the ratio holds while
the machine's speed drifts; the outputs' relative L2 difference is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIGS = {  # name -> (dim, ffn, heads, layers)
    "dim512": (512, 2048, 8, 8),
    "dim1024": (1024, 4096, 16, 4),
}
VIDEO, AUDIO_TOKENS, TEXT = (16, 8, 32, 32), 250, 64  # 8 x 16 x 16 = 2,048 video tokens


def build(name: str):
    """The model and inputs of `name`, seeded (the same in every tree that runs this)."""
    from duet.config import TowerConfig, TwinConfig
    from duet.model import ModalityInput, TwinModel

    dim, ffn, heads, layers = CONFIGS[name]
    common = dict(dim=dim, ffn_dim=ffn, num_heads=heads, num_layers=layers, text_len=TEXT, text_dim=384)
    cfg = TwinConfig(TowerConfig("video", in_dim=16, out_dim=16, **common),
                     TowerConfig("audio", in_dim=20, out_dim=20, patch_size=(1,),
                                 rope_time_scale=0.19676, **common))
    torch.manual_seed(0)
    model = TwinModel.from_config(cfg).eval()
    g = torch.Generator().manual_seed(1)
    t = torch.full((1,), 500.0)
    ctx = torch.randn(1, TEXT, 384, generator=g)
    inputs = (ModalityInput(torch.randn(1, *VIDEO, generator=g), t, ctx),
              ModalityInput(torch.randn(1, AUDIO_TOKENS, 20, generator=g), t, ctx))
    return model, inputs


def time_forward(model, inputs, repeats: int) -> tuple[list[float], tuple[torch.Tensor, ...]]:
    with torch.no_grad():
        out = model(*inputs)  # warm-up (and compilation, with --compile)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - t0)
    return times, out


def worker(name: str, state_file: str, out_file: str, repeats: int, compiled: bool) -> None:
    """Run in a subprocess: load the shared weights, time the forward, save the outputs."""
    model, inputs = build(name)
    model.load_state_dict(torch.load(state_file))
    if compiled:
        model.compile_blocks()
    times, out = time_forward(model, inputs, repeats)
    torch.save({"times": times, "out": out}, out_file)


def count_flops(model, inputs) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


def matmul_peak() -> float:
    a, b = torch.randn(2048, 1024), torch.randn(1024, 4096)
    a @ b
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    return 2 * 2048 * 1024 * 4096 * 10 / (time.perf_counter() - t0)


def run_tree(src: Path | None, name: str, state_file: str, repeats: int, compiled: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pt", delete=False) as f:
        out_file = f.name
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    cmd = [sys.executable, __file__, "--worker", json.dumps([name, state_file, out_file, repeats, compiled])]
    subprocess.run(cmd, check=True, env=env)
    result = torch.load(out_file)
    os.unlink(out_file)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="timed forwards per round")
    p.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    p.add_argument("--compile", action="store_true", help="also time compile_blocks()")
    p.add_argument("--baseline", type=Path, help="another checkout's src/ to compare with")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(*json.loads(args.worker))
        return
    peak = matmul_peak()
    print(f"float32 matmul peak: {peak / 1e9:.0f} GFLOP/s on {args.threads} thread(s)\n")
    print("| config | tokens | GFLOP | variant | s/forward (median) | GFLOP/s | of peak | vs baseline | rel-L2 vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.configs:
        model, inputs = build(name)
        flops = count_flops(model, inputs)
        with tempfile.NamedTemporaryFile(suffix=".pt", delete=False) as f:
            state_file = f.name
        torch.save(model.state_dict(), state_file)
        variants = [("eager", False)] + ([("compiled", True)] if args.compile else [])
        for label, compiled in variants:
            ours, theirs = [], []
            for _ in range(args.rounds if args.baseline else 1):
                mine = run_tree(None, name, state_file, args.repeats, compiled)
                ours += mine["times"]
                if args.baseline:
                    other = run_tree(args.baseline, name, state_file, args.repeats, False)
                    theirs += other["times"]
            sec = statistics.median(ours)
            ratio = diff = "-"
            if args.baseline:
                ratio = f"{sec / statistics.median(theirs):.2f}x"
                diff = f"{max(((a - b).norm() / b.norm()).item() for a, b in zip(mine['out'], other['out'])):.1e}"
            tokens = VIDEO[1] * VIDEO[2] * VIDEO[3] // 4 + AUDIO_TOKENS
            print(f"| {name} | {tokens:,} | {flops / 1e9:.1f} | {label} | {sec:.3f} | "
                  f"{flops / sec / 1e9:.0f} | {flops / sec / peak:.0%} | {ratio} | {diff} |", flush=True)
        os.unlink(state_file)


if __name__ == "__main__":
    main()
