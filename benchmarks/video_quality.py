"""How coherent the video tower's own pictures are, without audio: the check for a video
stage (or any stage) before spending hours on the stages after it.

    python benchmarks/video_quality.py WEIGHTS [WEIGHTS ...] [--clips 8] [--steps 25] \
        [--shift 3] [--guidance 1] [--stg 0 --stg-blocks 2] [--codec FILE] [--strip DIR] \
        [--denoise 0.3 0.5] [--resample 0.3 0.5 0.9]

WEIGHTS: a bundle directory, a `model.safetensors`, or a training checkpoint folder (its
EMA weights are laid over its raw ones: the EMA file holds the trainable parameters only).
The video tower (its shape from the weights' config; the demo
preset's for a bare .safetensors) samples held-out bounce captions from seeded noise with the
library's UniPC solver (the audio tower is not run); `--guidance` > 1 adds text CFG against
the empty prompt, which is only meaningful for a model trained with `text_dropout`. Each
clip is decoded and measured with `duet.eval.sync`: visual events per clip (floor contacts
the ruler finds; real clips have one per bounce) and the caption's ball colours seen
(Jaccard score). Flicker, balls that change colour and blobs that come and go all read as
extra events, so events per clip against the real clips' count is the coherence number.
Balls that rest or hover where real ones fall, or that blink out, make fewer events, so the
balls' vertical travel (`vertical_travel`, pixels per clip, as a fraction of the real
clips') is printed beside it: the motion number, and so is the balls' `height_jitter`
(median |second difference| of the tracked height): balls that jump from place to place
instead of falling travel as far as real ones but jitter by pixels where real ones stay
under one; "split frames" is the share of ball frames whose colour is split over two
blobs (`split_fraction`: a ball drawn twice, 0 in real clips). `--stg` adds spatiotemporal
skip guidance (a weak pass that skips `--stg-blocks`). Then the latents' frame-to-frame change (RMS), next to the real clips', and the spread of the
tower's x0 estimate over two pure-noise inputs at t = 1 (`noise_spread`; 0 when converged).
`--denoise T ...` also prints, per T, the tower's one-step x0 from the real clips' latents
noised to T, decoded and measured the same way: whether the tower keeps a ball it is
shown (a good denoiser keeps nearly all of the travel at T = 0.3) or smooths it away.
`--resample T0 ...` samples each real clip's latents noised to T0 over the rest of the
schedule (SDEdit): from how much noise the tower still follows a real path.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from duet.codecs.frames import FrameCodec
from duet.components import build_text_encoder
from duet.config import TwinConfig
from duet.data.dataset import encode_texts
from duet.data.world import HELDOUT_SEED_START, WorldConfig, make_clip
from duet.eval.adherence import prompt_adherence
from duet.eval.visual import height_jitter, split_fraction, vertical_travel, visual_events
from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas
from duet.train import checkpoint
from duet.train.config import TrainConfig
from duet.weights import load_into, load_weights, read_config, resolve_codec_paths


def weights_with_ema(path: Path) -> dict[str, torch.Tensor]:
    """The weights at `path`; a training checkpoint's EMA laid over its raw weights."""
    if not path.is_dir():
        return load_weights(path)
    if (path / "ema.safetensors").is_file() or checkpoint.is_sharded(path):
        return checkpoint.read_weights(path, "model") | checkpoint.read_weights(path, "ema")
    return checkpoint.read_weights(path, "model")


def frame_codec(path: Path, weights: str | None) -> FrameCodec:
    """`weights` if given, else the frame codec the bundle or training checkpoint at `path`
    names, else the shipped one. A bundle carries its codec; a checkpoint's config names it
    relative to the directory the run was started in, which is `out_dir`'s parent (the
    checkpoint lives in OUT_DIR/checkpoints/step_N)."""
    folder = path if path.is_dir() else path.parent
    if weights is None and (folder / "config.json").is_file():
        spec = resolve_codec_paths(read_config(folder)[0], folder).codecs.get("video", {})
        weights = spec.get("weights") if spec.get("name") == "frames" else None
    elif weights is None and (folder / "trainer.json").is_file():
        cfg = TrainConfig.from_dict(checkpoint.read_json(folder, "trainer")["config"])
        written = cfg.codecs.get("video", {}).get("weights")
        if written is not None and Path(written).is_absolute():
            weights = written
        elif written is not None and not Path(cfg.out_dir).is_absolute():
            out_dir = folder.resolve().parents[1]
            weights = str(out_dir.parents[len(Path(cfg.out_dir).parts) - 1] / written)
        elif written is not None:
            raise SystemExit(f"{path}: the run names its codec as {written!r}, relative to a "
                             "directory its checkpoint does not record; pass --codec FILE")
    return FrameCodec(weights)


def model_config(path: Path) -> TwinConfig:
    """The towers' shape as the weights were written: a bundle's config.json, a training
    checkpoint's config (trainer.json), else the demo preset (a bare .safetensors)."""
    folder = path if path.is_dir() else path.parent
    if (folder / "config.json").is_file():
        return read_config(folder)[0].model
    if (folder / "trainer.json").is_file():
        return TrainConfig.from_dict(checkpoint.read_json(folder, "trainer")["config"]).twin()
    return get_preset("demo").model


def noise_spread(model: TwinModel, context: torch.Tensor, shape: tuple[int, ...]) -> float:
    """RMS difference between the tower's x0 estimates from two pure-noise draws at t = 1.
    The input then holds no signal, so a converged tower returns the caption's mean picture
    for any noise (0); what varies with the noise is structure the sampler's first steps
    commit to and the later steps cannot undo."""
    t = torch.full((context.shape[0],), 1000.0)
    x0 = []
    for seed in (1, 2):
        noise = torch.randn(context.shape[0], *shape, generator=torch.Generator().manual_seed(seed))
        x0.append(noise - model.video_model(ModalityInput(noise, t, context)))  # x0 = x_1 - v
    return (x0[0] - x0[1]).pow(2).mean().sqrt().item()


def frame_change(latents: torch.Tensor) -> float:
    """RMS of the latent's change from one frame to the next: jitter that the codec decodes
    as blobs that come and go (real clips move smoothly)."""
    return (latents[:, :, 1:] - latents[:, :, :-1]).float().pow(2).mean().sqrt().item()


def decode(codec: FrameCodec, latents: torch.Tensor) -> np.ndarray:
    """Latents [B, C, F, h, w] -> uint8 frames [B, F, H, W, 3], as the ruler reads them."""
    frames = ((codec.decode(latents).permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255)
    return frames.to(torch.uint8).numpy()


def measure(frames: np.ndarray, clips: list, fps: float, real_travel: float) -> tuple[float, ...]:
    """Events per clip, travel against the real clips', height jitter, colour score, and the
    share of ball frames with a colour split over two blobs (a ball drawn twice)."""
    events = np.mean([len(visual_events(f, fps, "bounce")) for f in frames])
    travel = np.mean([vertical_travel(f) for f in frames]) / real_travel
    jitter = np.nanmedian([height_jitter(f) for f in frames])
    colour = np.mean([prompt_adherence(f, c.audio, c.caption)["colour_score"]
                      for f, c in zip(frames, clips)])
    split = np.nanmean([split_fraction(f) for f in frames])
    return events, travel, jitter, colour, split


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="+", type=Path)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--stg", type=float, default=0.0, help="STG scale on the video (0 = off)")
    p.add_argument("--stg-blocks", type=lambda s: tuple(int(b) for b in s.split(",")), default=(2,),
                   help="blocks the STG pass skips, comma-separated")
    p.add_argument("--codec", default=None,
                   help="frame codec weights the models' latents use (default: the one the "
                        "first WEIGHTS bundle or checkpoint names, else the shipped codec)")
    p.add_argument("--denoise", type=float, nargs="*", default=[],
                   help="noise levels t at which to measure the one-step x0 of real clips")
    p.add_argument("--resample", type=float, nargs="*", default=[],
                   help="noise levels t0 from which to sample the real clips' latents noised to t0 "
                        "with the same solver (the rest of the schedule)")
    p.add_argument("--strip", type=Path, default=None,
                   help="folder for frame strips: one PNG per WEIGHTS, each generated clip "
                        "(every 4th frame) above its real held-out clip")
    p.add_argument("--max-balls", type=int, choices=(1, 2), default=2,
                   help="the world of the held-out prompts and real clips, as `duet data build` drew "
                        "the training clips")
    p.add_argument("--drop-in", type=float, default=0.5, metavar="P")
    p.add_argument("--gravity", type=float, default=6.25, metavar="G")
    args = p.parse_args()
    preset = get_preset("demo")
    codec = frame_codec(args.weights[0], args.codec)
    world = WorldConfig(max_balls=args.max_balls, drop_in=args.drop_in, gravity=args.gravity)
    clips = [make_clip(HELDOUT_SEED_START + i, kind="bounce", config=world) for i in range(args.clips)]
    text = build_text_encoder(preset)
    context = encode_texts(text, [c.caption for c in clips], preset.model.video.text_len)
    null = encode_texts(text, [""], preset.model.video.text_len).expand_as(context)
    real = np.mean([len(visual_events(c.video, preset.media.fps, "bounce")) for c in clips])
    real_travel = np.mean([vertical_travel(c.video) for c in clips])
    real_jitter = np.nanmedian([height_jitter(c.video) for c in clips])
    pixels = torch.stack([torch.as_tensor(c.video) for c in clips]).permute(0, 4, 1, 2, 3)
    real_latents = codec.encode(pixels.float() / 127.5 - 1)
    real_change = frame_change(real_latents)
    print(f"real clips: {real:.1f} visual events per clip, vertical travel {real_travel:.0f} px "
          f"per clip, height jitter {real_jitter:.2f} px, latent frame change {real_change:.3f}\n")
    print("| weights | events / clip | travel / real | jitter px | colour score | split frames "
          "| latent frame change | x0 spread at t = 1 |\n" + "|---" * 8 + "|")
    shape = codec.latent_shape(preset.media.frames, *clips[0].video.shape[1:3])
    guidance = Guidance(video_scale=args.guidance, audio_scale=1.0, negative_skip_blocks=(),
                        stg_video=args.stg, stg_blocks=args.stg_blocks if args.stg else ())
    sigmas = flow_sigmas(args.steps, args.shift, dtype=torch.float64)
    for n, path in enumerate(args.weights):
        model = TwinModel.from_config(model_config(path)).eval()
        load_into(model, weights_with_ema(path), dtype=torch.float32)
        denoise = functools.partial(guided_velocity, model, cond=Conditioning(context, None),
                                    uncond=Conditioning(null, None), guidance=guidance)
        noise = torch.randn(args.clips, *shape, generator=torch.Generator().manual_seed(0))
        latents, _ = sample(denoise, noise, None, sigmas, disable=True)
        frames = decode(codec, latents)
        events, travel, jitter, colour, split = measure(frames, clips, preset.media.fps, real_travel)
        print(f"| {path} | {events:.1f} | {travel:.2f} | {jitter:.2f} | {colour:.2f} | {split:.0%} "
              f"| {frame_change(latents):.3f} "
              f"| {noise_spread(model, context, shape):.3f} |", flush=True)
        for t in args.denoise:
            noise = torch.randn(real_latents.shape, generator=torch.Generator().manual_seed(1))
            noisy = (1 - t) * real_latents + t * noise
            v = model.video_model(ModalityInput(noisy, torch.full((args.clips,), 1000.0 * t), context))
            m = measure(decode(codec, noisy - t * v), clips, preset.media.fps, real_travel)
            print(f"|   one-step x0 of real clips at t = {t} | {m[0]:.1f} | {m[1]:.2f} | {m[2]:.2f} "
                  f"| {m[3]:.2f} | {m[4]:.0%} | - | - |", flush=True)
        for t0 in args.resample:
            noise = torch.randn(real_latents.shape, generator=torch.Generator().manual_seed(0))
            grid = torch.cat([sigmas.new_tensor([t0]), sigmas[sigmas < t0]])
            resampled, _ = sample(denoise, (1 - t0) * real_latents + t0 * noise, None, grid, disable=True)
            m = measure(decode(codec, resampled), clips, preset.media.fps, real_travel)
            print(f"|   real clips resampled from t = {t0} ({len(grid) - 1} steps) | {m[0]:.1f} | {m[1]:.2f} "
                  f"| {m[2]:.2f} | {m[3]:.2f} | {m[4]:.0%} | - | - |", flush=True)
        if args.strip is not None:
            args.strip.mkdir(parents=True, exist_ok=True)
            rows = [np.concatenate(list(v[::4]), axis=1) for f, c in zip(frames, clips) for v in (f, c.video)]
            Image.fromarray(np.concatenate(rows, axis=0)).save(args.strip / f"{n}.png")


if __name__ == "__main__":
    main()
