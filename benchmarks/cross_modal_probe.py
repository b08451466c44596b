"""Does each tower use the other modality? Teacher-forced losses with true vs swapped partners.

    python benchmarks/cross_modal_probe.py MODEL_DIR --data DATA_DIR [--items 32] [--t 0.2 0.5 0.8]

For bounce clips of a latent dataset (`duet data build`), the joint model denoises both
modalities at a fixed time t with fixed noise, three ways: with each item's own partner
(matched), with the partner of another bounce clip (swapped: same kind of scene, wrong
event times) and with the fusion switched off. If the audio tower reads impact times from
the video, its loss is clearly lower with the matched video than with the swapped one; a
model that ignores the other modality gives equal losses. Sync in generated clips cannot
appear before this gap does, so it is the first thing to check when sync is missing.
It also prints, per fusion block, the share of the audio tower's cross-modal attention that
falls within 1.5 latent frames of its own instant on the shared time axis (uniform
attention gives the chance share printed beside it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from duet.model import TwinModel
from duet.model.alignment import audio_to_video_attention, mass_near_aligned
from duet.model.state import ModalityInput
from duet.train.data import LatentBatch, LatentDataset
from duet.train.objectives import TIME_SCALE, noisy_latent, velocity_target
from duet.weights import BUNDLE_WEIGHTS, load_into, load_weights, read_config


def bounce_indices(data: Path, n: int) -> list[int]:
    """The first n items whose caption describes balls (the world's bounce scenes)."""
    captions = json.loads((data / "captions.json").read_text())
    return [i for i, c in enumerate(captions) if " ball" in c["caption"]][:n]


def _latents_and_noise(b: LatentBatch, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clean video and audio latents (float32) and fixed noise for each, from `seed`."""
    g = torch.Generator().manual_seed(seed)
    x_v, x_a = b.video.float(), b.audio.float()
    return x_v, x_a, torch.randn(x_v.shape, generator=g), torch.randn(x_a.shape, generator=g)


@torch.no_grad()
def probe(model: TwinModel, ds: LatentDataset, idx: list[int], t: float, seed: int = 0,
          partner_t: float | None = None) -> dict[str, float]:
    """Per-modality MSE at time t: matched, swapped partner, fusion off. `partner_t`: the
    partner modality's time instead of t (0: a clean partner, as in v2a / a2v)."""
    b = ds.gather(idx)
    x_v, x_a, e_v, e_a = _latents_and_noise(b, seed)
    tt = torch.full((len(idx),), t)
    if partner_t is None:
        return _losses(model, b, x_v, x_a, e_v, e_a, tt, tt)
    tp = torch.full((len(idx),), partner_t)
    out = {}
    for target in ("audio", "video"):  # the partner of each is at tp
        r = _losses(model, b, x_v, x_a, e_v, e_a, tp if target == "audio" else tt,
                    tp if target == "video" else tt)
        out.update({k: v for k, v in r.items() if k.startswith(target)})
    return out


@torch.no_grad()
def attention_locality(model: TwinModel, ds: LatentDataset, idx: list[int], t: float,
                       seed: int = 0) -> tuple[list[float], float]:
    """Per block, the audio tower's attention share within 1.5 latent frames of its instant
    (both modalities at time t), and that share for uniform attention."""
    b = ds.gather(idx)
    x_v, x_a, e_v, e_a = _latents_and_noise(b, seed)
    tt = torch.full((len(idx),), t)
    v_in = ModalityInput(noisy_latent(x_v, e_v, tt), TIME_SCALE * tt, b.video_context)
    a_in = ModalityInput(noisy_latent(x_a, e_a, tt), TIME_SCALE * tt, b.audio_context)
    scale = model.cfg.audio.rope_time_scale
    per_frame = x_v.shape[3] * x_v.shape[4] // (model.cfg.video.patch_size[1] * model.cfg.video.patch_size[2])
    maps = audio_to_video_attention(model, v_in, a_in)
    uniform = torch.full_like(maps[0][:1, :1], 1.0 / maps[0].shape[-1])
    return [mass_near_aligned(w, scale, per_frame) for w in maps], mass_near_aligned(uniform, scale, per_frame)


def _losses(model: TwinModel, b: LatentBatch, x_v: Tensor, x_a: Tensor, e_v: Tensor, e_a: Tensor,
            t_v: Tensor, t_a: Tensor) -> dict[str, float]:
    v_in = ModalityInput(noisy_latent(x_v, e_v, t_v), TIME_SCALE * t_v, b.video_context)
    a_in = ModalityInput(noisy_latent(x_a, e_a, t_a), TIME_SCALE * t_a, b.audio_context)
    perm = torch.roll(torch.arange(x_v.shape[0]), 1)
    v_sw = ModalityInput(v_in.latent[perm], v_in.timestep, b.video_context)
    a_sw = ModalityInput(a_in.latent[perm], a_in.timestep, b.audio_context)
    tv, ta = velocity_target(x_v, e_v), velocity_target(x_a, e_a)
    out = {}
    v, a = model(v_in, a_in)
    out["video matched"], out["audio matched"] = F.mse_loss(v, tv).item(), F.mse_loss(a, ta).item()
    _, a = model(v_sw, a_in)  # audio of item i beside the video of item i-1
    v, _ = model(v_in, a_sw)
    out["video swapped"], out["audio swapped"] = F.mse_loss(v, tv).item(), F.mse_loss(a, ta).item()
    v, a = model(v_in, a_in, cross_modal=False)
    out["video alone"], out["audio alone"] = F.mse_loss(v, tv).item(), F.mse_loss(a, ta).item()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="bundle directory (config.json + model.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="latent dataset folder of the world")
    p.add_argument("--items", type=int, default=32)
    p.add_argument("--t", type=float, nargs="+", default=[0.2, 0.5, 0.8])
    p.add_argument("--partner-t", type=float, help="the partner's time (default: the same t; 0: clean)")
    args = p.parse_args()
    preset, _ = read_config(args.model)
    model = TwinModel.from_config(preset.model, device="meta")
    load_into(model, load_weights(args.model / BUNDLE_WEIGHTS), dtype=torch.float32)
    model.eval()
    ds = LatentDataset.from_shards([args.data])
    idx = bounce_indices(args.data, args.items)
    print(f"{len(idx)} bounce clips of {args.data}")
    print("| t | audio matched | audio swapped video | audio fusion off | video matched | "
          "video swapped audio | video fusion off |")
    print("|---|---|---|---|---|---|---|")
    for t in args.t:
        r = probe(model, ds, idx, t, partner_t=args.partner_t)
        print(f"| {t:g} | {r['audio matched']:.4f} | {r['audio swapped']:.4f} | {r['audio alone']:.4f} | "
              f"{r['video matched']:.4f} | {r['video swapped']:.4f} | {r['video alone']:.4f} |")
    if model.bridge is None:
        near, chance = attention_locality(model, ds, idx, args.t[0])
        print(f"audio->video attention within 1.5 frames of its instant (t={args.t[0]:g}), per block: "
              + ", ".join(f"{m:.3f}" for m in near) + f" (uniform: {chance:.3f})")


if __name__ == "__main__":
    main()
