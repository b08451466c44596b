"""Seconds per denoising step and peak memory of the joint model, as a table.

Each configuration runs in its own subprocess so that its peak RSS is its own. A step is one
guided model evaluation (conditional + negative pass with skip-layer guidance) plus two
UniPC updates; "batched" runs both CFG passes as one batch of 2, "sequential" as two calls,
and the ratio column compares them (and bf16 against fp32).

    python benchmarks/step_time.py                 # CPU: tiny and medium
    python benchmarks/step_time.py --device cuda --configs ovi-720x720-5s --dtype bfloat16 \
        --compile --weights-dtype fp8                # the GPU target's settings (issue 22)

--compile compiles every block (`TwinModel.compile_blocks`; the warm-up steps then include
the compilation, which is not timed); --weights-dtype stores the blocks' linear weights in
fp8 or int8 (`duet.memory`), as `duet generate --weights-dtype` does.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time

import torch

from duet.config import TowerConfig, TwinConfig
from duet.memory import MemoryConfig, apply_memory
from duet.model import TwinModel
from duet.presets import get_preset
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas

def _medium() -> TwinConfig:
    common = dict(dim=512, ffn_dim=2048, num_heads=8, num_layers=8, text_len=64, text_dim=384)
    return TwinConfig(TowerConfig("video", in_dim=16, out_dim=16, **common),
                      TowerConfig("audio", in_dim=20, out_dim=20, patch_size=(1,),
                                  rope_time_scale=0.19676, **common))


# name -> (model config, video latent [C, F, H, W], audio latents L, text tokens)
CONFIGS = {
    # reference tiny model (dim 64, 3 blocks) at the reference case's 48 + 15 tokens
    "tiny": (lambda: get_preset("tiny").model, (48, 3, 8, 8), 15, 16),
    # dim 512, 8 blocks, 8 x 16 x 16 = 2,048 video tokens, 157 audio tokens
    "medium": (_medium, (16, 8, 32, 32), 157, 64),
    # the real 11B structure at 704x704, 121 frames: 15,004 video + 157 audio tokens
    "ovi-720x720-5s": (lambda: get_preset("ovi-720x720-5s").model, (48, 31, 44, 44), 157, 512),
}


def run_one(name: str, device: str, dtype: torch.dtype, batched: bool, steps: int,
            compiled: bool = False, weights_dtype: str | None = None) -> dict:
    build, vshape, alen, lt = CONFIGS[name]
    cfg = build()
    model = TwinModel.from_config(cfg, device=device, dtype=dtype).eval()
    if weights_dtype is not None:
        model = apply_memory(model, MemoryConfig(weights_dtype=weights_dtype), device)
    if compiled:
        model.compile_blocks()
    g = torch.Generator().manual_seed(0)
    video = torch.randn(1, *vshape, generator=g).to(device, dtype)
    audio = torch.randn(1, alen, cfg.audio.in_dim, generator=g).to(device, dtype)
    ctx = lambda: torch.randn(1, lt, cfg.video.text_dim, generator=g).to(device, dtype)  # noqa: E731
    cond, uncond = Conditioning(ctx(), ctx()), Conditioning(ctx(), ctx())
    guidance = Guidance(4.0, 3.0, negative_skip_blocks=(min(11, cfg.num_layers - 1),), batched=batched)
    denoise = functools.partial(guided_velocity, model, cond=cond, uncond=uncond, guidance=guidance)
    sigmas = flow_sigmas(steps + 1, 5.0).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sample(denoise, video, audio, sigmas[-3:], disable=True)  # warm-up: 2 steps (compiles)
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    sample(denoise, video, audio, sigmas, disable=True)
    sync()
    sec = (time.perf_counter() - t0) / (len(sigmas) - 1)
    out = {"config": name, "device": device, "dtype": str(dtype).removeprefix("torch."),
           "cfg": "batched" if batched else "sequential", "sec_per_step": sec,
           "compiled": compiled, "weights_dtype": weights_dtype,
           "video_tokens": vshape[1] * vshape[2] * vshape[3] // 4, "audio_tokens": alen,
           "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["peak_gpu_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "medium"], choices=sorted(CONFIGS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--compile", action="store_true", help="torch.compile every block")
    p.add_argument("--weights-dtype", choices=["fp8", "int8"], help="quantized linear weights")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        name, dtype, mode = args.one.split(",")
        print(json.dumps(run_one(name, args.device, getattr(torch, dtype), mode == "batched",
                                 args.steps, args.compile, args.weights_dtype)))
        return
    rows = []
    for name in args.configs:
        for dtype in args.dtype:
            for mode in ("batched", "sequential"):
                cmd = [sys.executable, __file__, "--one", f"{name},{dtype},{mode}",
                       "--device", args.device, "--steps", str(args.steps)]
                cmd += ["--compile"] if args.compile else []
                cmd += ["--weights-dtype", args.weights_dtype] if args.weights_dtype else []
                rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                      text=True).stdout.splitlines()[-1]))
    base = {(r["config"], r["dtype"]): r["sec_per_step"] for r in rows if r["cfg"] == "sequential"}
    fp32 = {(r["config"], r["cfg"]): r["sec_per_step"] for r in rows if r["dtype"] == "float32"}
    gpu = any("peak_gpu_GiB" in r for r in rows)
    head = "| config | tokens (video+audio) | params | dtype | CFG | s/step | vs sequential | vs fp32 | peak RSS |"
    print(head + (" peak GPU |" if gpu else ""))
    print("|" + "---|" * (head.count("|") - 1 + gpu))
    for r in rows:
        vs_seq = r["sec_per_step"] / base[(r["config"], r["dtype"])]
        f = fp32.get((r["config"], r["cfg"]))
        vs32 = f"{r['sec_per_step'] / f:.2f}x" if f else "-"
        line = (f"| {r['config']} | {r['video_tokens']:,}+{r['audio_tokens']} | {r['params_M']:.1f}M | "
                f"{r['dtype']} | {r['cfg']} | {r['sec_per_step']:.3f} | {vs_seq:.2f}x | {vs32} | "
                f"{r['peak_rss_MiB']:.0f} MiB |")
        print(line + (f" {r['peak_gpu_GiB']:.1f} GiB |" if gpu else ""))


if __name__ == "__main__":
    main()
