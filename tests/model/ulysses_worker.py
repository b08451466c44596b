"""Run under torchrun by test_ulysses.py: every case of `CASES` with the model's tokens split
over the ranks (Ulysses sequence parallelism), each rank saving what it returned, plus the
errors that sequence parallelism must raise. The test computes the same cases in one plain
process and compares."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from duet.config import TwinConfig
from duet.errors import ConfigError
from duet.loading import random_model
from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity, video_prefix_timestep
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas

Outputs = dict[str, Tensor]


def _text(batch: int, rows: list[int], dim: int, g: torch.Generator) -> Tensor:
    """Text states [B, max(rows), dim], item b zero past rows[b] (a shorter prompt)."""
    x = torch.randn(batch, max(rows), dim, generator=g)
    for b, n in enumerate(rows):
        x[b, n:] = 0
    return x


def tiny_padded(model: TwinModel) -> Outputs:
    """A fused forward on a padded batch: 9 video and 7 audio tokens (both odd, so the
    shards are padded), item 1 shorter in both modalities and in its text."""
    g = torch.Generator().manual_seed(1)
    t = torch.tensor([700.0, 300.0])
    text = _text(2, [10, 6], 4096, g)
    video = ModalityInput(torch.randn(2, 48, 3, 2, 6, generator=g), t, text,
                          lengths=torch.tensor([9, 6]))
    audio = ModalityInput(torch.randn(2, 7, 20, generator=g), t, text, lengths=torch.tensor([7, 5]))
    v, a = model(video, audio)
    return {"video": v, "audio": a}


def tiny_per_token(model: TwinModel) -> Outputs:
    """Per-token video timesteps (clean first frame), a skipped block for one item and the
    fusion off for the other, in one fused forward; then each tower alone."""
    g = torch.Generator().manual_seed(2)
    t = torch.tensor([500.0, 900.0])
    latent = torch.randn(2, 48, 3, 2, 6, generator=g)
    text = _text(2, [8, 8], 4096, g)
    video = ModalityInput(latent, video_prefix_timestep(t, latent, (1, 2, 2)), text)
    audio = ModalityInput(torch.randn(2, 11, 20, generator=g), t, text)
    v, a = model(video, audio, skip_blocks=(1,), skip_items=torch.tensor([True, False]),
                 cross_modal=torch.tensor([True, False]))
    v_alone, _ = model(video, None)
    _, a_alone = model(None, audio)
    return {"video": v, "audio": a, "video_alone": v_alone, "audio_alone": a_alone}


def demo_shape(model: TwinModel) -> Outputs:
    """The demo preset's clip shape: 97 frames at 64x64 (388 video tokens), 125 audio tokens."""
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([600.0])
    text = _text(1, [20], 384, g)
    video = ModalityInput(torch.randn(1, 18, 97, 4, 4, generator=g), t, text)
    audio = ModalityInput(torch.randn(1, 125, 80, generator=g), t, text)
    v, a = model(video, audio)
    return {"video": v, "audio": a}


def tiny_sampling(model: TwinModel) -> Outputs:
    """3 UniPC steps with batched CFG, skip-layer guidance in the negative pass and the
    cross-modal guidance (fusion off) term: a whole short sampling loop."""
    g = torch.Generator().manual_seed(4)
    cond = Conditioning(*[_text(1, [9], 4096, g)] * 2)
    uncond = Conditioning(_text(1, [5], 4096, g), _text(1, [4], 4096, g))
    guidance = Guidance(video_scale=4.0, audio_scale=3.0, negative_skip_blocks=(1,),
                        cross_modal_video=1.5, cross_modal_audio=1.5)

    def denoise(video: Tensor | None, audio: Tensor | None, t: Tensor) -> tuple:
        return guided_velocity(model, video, audio, t, cond, uncond, guidance)

    video = torch.randn(1, 48, 3, 2, 6, generator=g)
    audio = torch.randn(1, 9, 20, generator=g)
    v, a = sample(denoise, video, audio, flow_sigmas(3, 5.0, dtype=torch.float64), disable=True)
    return {"video": v, "audio": a}


# case name -> (preset, run)
CASES: dict[str, tuple[str, Callable[[TwinModel], Outputs]]] = {
    "tiny_padded": ("tiny", tiny_padded),
    "tiny_per_token": ("tiny", tiny_per_token),
    "demo_shape": ("demo", demo_shape),
    "tiny_sampling": ("tiny", tiny_sampling),
}


def errors() -> dict[str, str]:
    """The messages of what sequence parallelism refuses on this world size."""
    tiny = get_preset("tiny").model
    three = [dataclasses.replace(c, dim=48, ffn_dim=96, num_heads=3)
             for c in (tiny.video, tiny.audio)]
    bridged = get_preset("demo-bridge").model
    out = {}
    for name, cfg in (("heads", TwinConfig(*three)), ("bridge", bridged)):
        try:
            TwinModel.from_config(cfg, device="meta").enable_sequence_parallel()
        except ConfigError as e:
            out[name] = str(e)
    return out


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    try:
        results: dict[str, object] = {"world": dist.get_world_size(), "errors": errors()}
        models = {name: random_model(get_preset(name)).eval().enable_sequence_parallel()
                  for name in ("tiny", "demo")}
        with torch.no_grad():
            for case, (preset, run) in CASES.items():
                results[case] = run(models[preset])
        torch.save(results, Path(out_dir) / f"rank{dist.get_rank()}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
