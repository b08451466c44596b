"""Duet's video tower against diffusers' `WanTransformer3DModel` (the Wan 2.1/2.2 transformer
that diffusers users run) on the same weights and inputs: float32 forward time and output
difference on a CPU.

    python benchmarks/forward_vs_diffusers.py [--configs dim512 dim1024] [--threads 1] \
        [--repeats 3] [--rounds 3]

The official Ovi code is not installable here (issue 22 asks for a ratio against it); this is
the same architecture, Wan's video tower, in the field's most used independent
implementation. The configs are issue 22's sizes without the audio tower and the fusion
(which diffusers has no counterpart for): dim 512 (8 blocks) and dim 1024 (4 blocks), 2,048
video tokens (16 x 8 x 32 x 32 latent, patch 1 x 2 x 2) and 64 text tokens. Duet's tower
holds the official checkpoint's key names; `duet.weights.wan_dit_key` renames them to
diffusers', so both models compute from one state dict. Forwards alternate between the
two in rounds (ratios of medians, so the ratio holds while the machine's speed drifts).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

CONFIGS = {  # name -> (dim, ffn, heads, layers)
    "dim512": (512, 2048, 8, 8),
    "dim1024": (1024, 4096, 16, 4),
}
VIDEO, TEXT, TEXT_DIM = (16, 8, 32, 32), 64, 384


def build(name: str):
    """Duet's tower, diffusers' model with the same weights, and one input, seeded."""
    from diffusers import WanTransformer3DModel

    from duet.config import TowerConfig
    from duet.model import ModalityInput
    from duet.model.tower import Tower
    from duet.weights import load_into, wan_dit_key

    dim, ffn, heads, layers = CONFIGS[name]
    torch.manual_seed(0)
    ours = Tower(TowerConfig("video", dim=dim, ffn_dim=ffn, num_heads=heads, num_layers=layers,
                             in_dim=16, out_dim=16, text_len=TEXT, text_dim=TEXT_DIM,
                             cross_modal=False)).eval()
    for p in ours.parameters():  # every parameter random and of unit gain, so each one shows
        if p.dim() > 1:
            p.data.normal_(0.0, p[0].numel() ** -0.5)
        else:
            p.data.uniform_(-1.0, 1.0)
    theirs = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads,
                                   attention_head_dim=dim // heads, in_channels=16,
                                   out_channels=16, text_dim=TEXT_DIM, freq_dim=256,
                                   ffn_dim=ffn, num_layers=layers).eval()
    load_into(theirs, {wan_dit_key(k): v for k, v in ours.state_dict().items()}, "mapped Wan DiT")
    g = torch.Generator().manual_seed(1)
    latent, ctx = torch.randn(1, *VIDEO, generator=g), torch.randn(1, TEXT, TEXT_DIM, generator=g)
    t = torch.full((1,), 500.0)
    return (functools.partial(ours, ModalityInput(latent, t, ctx)),
            functools.partial(theirs, latent, t, ctx, return_dict=False))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed forwards of each per round")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two models")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"float32, {args.threads} thread(s), {args.rounds} rounds x {args.repeats} forwards\n")
    print("| config | video tokens | Duet s/forward | diffusers s/forward | Duet / diffusers "
          "| rel-L2 |\n|---|---|---|---|---|---|")
    for name in args.configs:
        run_ours, run_theirs = build(name)
        a, (b,) = run_ours(), run_theirs()  # warm-up, and the outputs compared
        rel = ((a - b).norm() / b.norm()).item()
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours += [timed(run_ours) for _ in range(args.repeats)]
            theirs += [timed(run_theirs) for _ in range(args.repeats)]
        mo, mt = statistics.median(ours), statistics.median(theirs)
        tokens = VIDEO[1] * VIDEO[2] * VIDEO[3] // 4
        print(f"| {name} | {tokens:,} | {mo:.3f} | {mt:.3f} | {mo / mt:.2f}x | {rel:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
