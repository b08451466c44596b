"""How well a model denoises training latents at a few noise levels (the check that showed
why the first demo run's pictures stayed speckled).

    python benchmarks/denoise_probe.py WEIGHTS.safetensors --data SHARD_DIR [--config RUN.json]

WEIGHTS: a bundle's model.safetensors or a training checkpoint's; the model shape comes from
--config (a `duet train` config) or else the demo preset. For video latents x0 of the first
shard, x_t = (1-t) x0 + t eps; the table gives the flow-matching loss and the x0 estimate's
mean squared error next to that of the noisy input itself ("trivial"): their ratio is the
fraction of the noise the model leaves in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.train import TrainConfig
from duet.weights import load_into, load_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("--data", required=True, help="a shard directory from `duet data build`")
    p.add_argument("--config", help="the run's training config (model shape)")
    p.add_argument("--items", type=int, default=4)
    args = p.parse_args()
    twin = TrainConfig.from_file(args.config).twin() if args.config else get_preset("demo").model
    model = TwinModel.from_config(twin).eval()
    load_into(model, load_weights(args.weights), dtype=torch.float32)
    shard = load_file(str(sorted(Path(args.data).glob("*.safetensors"))[0]))
    x0, ctx = shard["video"][: args.items].float(), shard["context"][: args.items].float()
    g = torch.Generator().manual_seed(0)
    print("| t | loss | x0 MSE | noisy-input MSE | noise left |")
    print("|---|---|---|---|---|")
    for t in (0.9, 0.5, 0.2, 0.05):
        eps = torch.randn(x0.shape, generator=g)
        xt = (1 - t) * x0 + t * eps
        with torch.no_grad():
            v, _ = model(ModalityInput(xt, torch.full((len(x0),), t * 1000), ctx), None)
        err, trivial = ((xt - t * v - x0) ** 2).mean(), ((xt - x0) ** 2).mean()
        loss = ((v - (eps - x0)) ** 2).mean()
        print(f"| {t} | {loss:.4f} | {err:.4f} | {trivial:.4f} | {err / trivial:.0%} |")


if __name__ == "__main__":
    main()
