"""Weight bytes and peak GPU memory of the twin DiT under each memory option, as a table.

Rows: bf16, fp8 and int8 weights (`duet.quantize`), each whole on the device or offloaded
block by block. The byte columns are computed on the `meta` device, so the 11.7B model's
sizes print on any machine without allocating it:

- weights: every parameter and buffer as stored;
- on device: what stays on the GPU between blocks: everything for a whole model; with
  offload, the resident part (embeddings, head) plus three blocks (the fused pair that
  is running and the one being prefetched: SequentialOffload's keep=2, + 1).

With CUDA (or `--run`), each row also runs in its own subprocess: random bf16 weights, the
options applied, then guided-batch forward passes (batch 2: conditional + negative) at the
preset's default clip size; it reports torch.cuda.max_memory_allocated and seconds per
forward (on CPU only the seconds).

    python benchmarks/memory.py                              # sizes of ovi-720x720-5s
    python benchmarks/memory.py --device cuda                # + peak GPU memory, s/forward
    python benchmarks/memory.py --preset demo --device cpu --run   # the run path, small
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from duet.config import Preset
from duet.memory import MemoryConfig, apply_memory
from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.quantize import quantize_fp8, quantize_int8, weight_bytes

ROWS = [(w, off) for w in (None, "fp8", "int8") for off in (False, True)]
ON_DEVICE_BLOCKS = 3  # SequentialOffload keep=2 (a fused pair) + 1 prefetched block
GIB = 2**30


def sizes(preset: Preset, weights_dtype: str | None) -> dict[bool, dict[str, float]]:
    """GiB of the model as stored and on the device, without and with offload, built on
    `meta` (nothing allocated)."""
    model = TwinModel.from_config(preset.model, device="meta", dtype=torch.bfloat16)
    units = model.shard_units()
    quantize = {"fp8": quantize_fp8, "int8": quantize_int8}.get(weights_dtype)
    if quantize is not None:
        for u in units:
            quantize(u)
    total = weight_bytes(model)
    per_unit = [weight_bytes(u) for u in units]
    offloaded = total - sum(per_unit) + ON_DEVICE_BLOCKS * max(per_unit)
    return {off: {"weights_GiB": total / GIB, "on_device_GiB": (offloaded if off else total) / GIB}
            for off in (False, True)}


def _random_weights(preset: Preset) -> TwinModel:
    """The model in bf16 on the CPU with N(0, 0.02) weights: enough to measure memory and
    time, and faster to fill than the default init at 11.7B parameters."""
    model = TwinModel.from_config(preset.model, device="meta", dtype=torch.bfloat16)
    model = model.to_empty(device="cpu").eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=g)
    return model


def run(preset: Preset, weights_dtype: str | None, offload: bool, device: str,
        forwards: int) -> dict[str, float]:
    """Peak memory (CUDA) and seconds per guided-batch forward with random weights."""
    cuda = device.startswith("cuda")
    model = apply_memory(_random_weights(preset), MemoryConfig(offload, weights_dtype), device)
    media, cfg = preset.media, preset.model
    side = int(media.area**0.5) // media.size_multiple * media.size_multiple
    st = media.video_stride
    g = torch.Generator().manual_seed(0)
    latent = (cfg.video.in_dim, media.latent_frames(media.frames), side // st[1], side // st[2])
    video = torch.randn(2, *latent, generator=g).to(device, torch.bfloat16)
    audio = torch.randn(2, media.audio_length(media.frames), cfg.audio.in_dim,
                        generator=g).to(device, torch.bfloat16)
    ctx = torch.randn(2, 64, cfg.video.text_dim, generator=g).to(device, torch.bfloat16)
    t = torch.tensor([500.0, 500.0], device=device)
    inputs = ModalityInput(video, t, ctx), ModalityInput(audio, t, ctx)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out: dict[str, float] = {}
    if cuda:
        out["resident_GiB"] = torch.cuda.memory_allocated() / GIB
    with torch.no_grad():
        model(*inputs)  # warm-up (and, with offload, the block order for prefetching)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(forwards):
            model(*inputs)
        sync()
    out["sec_per_forward"] = (time.perf_counter() - t0) / forwards
    if cuda:
        out["peak_GiB"] = torch.cuda.max_memory_allocated() / GIB
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="ovi-720x720-5s")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--run", action="store_true", help="also run the model (default: on CUDA)")
    p.add_argument("--forwards", type=int, default=2, help="timed forward passes per row")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    preset = get_preset(args.preset)
    if args.one:  # one row, in its own process so that its peak memory is its own
        w, off = args.one.split(",")
        weights = None if w == "bf16" else w
        print(json.dumps(run(preset, weights, off == "1", args.device, args.forwards)))
        return
    measure = args.run or args.device.startswith("cuda")
    rows = []
    table = {w: sizes(preset, w) for w in {w for w, _ in ROWS}}
    for w, off in ROWS:
        row = {"weights": w or "bf16", "offload": off, **table[w][off]}
        if measure:
            cmd = [sys.executable, __file__, "--one", f"{w or 'bf16'},{int(off)}", "--preset",
                   args.preset, "--device", args.device, "--forwards", str(args.forwards)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"row {w or 'bf16'} offload={off} failed:\n{done.stderr[-3000:]}")
            row.update(json.loads(done.stdout.splitlines()[-1]))
        rows.append(row)
    base = rows[0]
    cuda = any("peak_GiB" in r for r in rows)
    head = "| weights | offload | weights GiB | on device GiB | on device vs bf16 |"
    head += " peak GPU GiB | vs bf16 |" if cuda else ""
    head += " s/forward |" if measure else ""
    print(f"{preset.name}: weight bytes computed on meta" + (f"; runs on {args.device}, random "
          "weights, batch 2 at the default clip size" if measure else ""))
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['weights']} | {'yes' if r['offload'] else 'no'} | {r['weights_GiB']:.2f} | "
                f"{r['on_device_GiB']:.2f} | {r['on_device_GiB'] / base['on_device_GiB']:.2f}x |")
        if cuda:
            line += f" {r['peak_GiB']:.2f} | {r['peak_GiB'] / base['peak_GiB']:.2f}x |"
        if measure:
            line += f" {r['sec_per_forward']:.3f} |"
        print(line)


if __name__ == "__main__":
    main()
