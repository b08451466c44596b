"""`duet train`, `duet rl`, `duet data build|curate` and `duet codec train`: make the data
and the weights; each hands its config to the library's own entry point."""

from __future__ import annotations

import argparse
import logging


def train(args: argparse.Namespace) -> int:
    """`duet train CONFIG`: the trainer's own entry point, with its step logs shown."""
    from duet.train.trainer import main as train_main

    logging.getLogger("duet").setLevel(logging.INFO)  # step logs and checkpoint messages
    flags = [*(["-q"] if args.quiet else []), *(["--lora"] if args.lora else [])]
    return train_main([args.config, *flags, *(f"--set={s}" for s in args.set)])


def rl(args: argparse.Namespace) -> int:
    """`duet rl CONFIG`: the RL trainer's own entry point, with its step logs shown."""
    from duet.train.rl.trainer import main as rl_main

    logging.getLogger("duet").setLevel(logging.INFO)  # step logs and checkpoint messages
    return rl_main([args.config, *(["-q"] if args.quiet else []), *(f"--set={s}" for s in args.set)])


def data_build(args: argparse.Namespace) -> int:
    """Synthetic-world clips -> latent shards for a preset's codecs and text encoder."""
    from duet.presets import codecs_with, get_preset
    from duet.data.dataset import build_shards, world_config_for

    preset = get_preset(args.preset)
    if args.video_codec_weights:
        preset = codecs_with(preset, {"video": {"weights": args.video_codec_weights}})
    overrides = {k: tuple(v.split(",")) for k, v in (("kinds", args.kinds), ("materials", args.materials)) if v}
    numbers = (("max_balls", args.max_balls), ("drop_in", args.drop_in), ("gravity", args.gravity))
    overrides.update({k: v for k, v in numbers if v is not None})
    seeds = range(args.start_seed, args.start_seed + args.clips)
    paths = build_shards(args.output, preset, seeds, shard_size=args.shard_size,
                         config=world_config_for(preset, **overrides), progress=not args.quiet)
    print(f"wrote {len(paths)} shards ({args.clips} clips) to {args.output}")
    return 0


def data_curate(args: argparse.Namespace) -> int:
    """Real videos -> filtered, captioned clips -> latent shards (`duet.data.curate`)."""
    import dataclasses

    from duet.data.curate import CurateConfig, curate

    cfg = CurateConfig.from_file(args.config) if args.config else CurateConfig()
    changes = {k: v for k, v in (("preset", args.preset), ("workers", args.workers)) if v is not None}
    cfg = dataclasses.replace(cfg, **changes)
    ray_address = args.ray or None
    s = curate(args.input, args.output, cfg, report=args.report, ray=args.ray is not None,
               ray_address=ray_address, progress=not args.quiet)
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items())) or "none"
    print(f"curated {s.inputs} inputs ({s.skipped} done before): kept {s.clips_kept} of {s.rows} "
          f"report rows in {len(s.shards)} shards under {args.output}; rejections: {reasons}")
    return 0


def codec_train(args: argparse.Namespace) -> int:
    """Train the demo model's frame codec on synthetic-world frames."""
    from duet.train.codec import config_from_args, train_frame_codec

    cfg = config_from_args(args.output, clips=args.clips, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, latent_noise=args.latent_noise,
                           seed=args.seed, chroma_weight=args.chroma_weight,
                           interp_weight=args.interp_weight,
                           latent_channels=args.latent_channels,
                           widths=args.widths,
                           chroma_channels=args.chroma_channels)
    r = train_frame_codec(cfg, progress=not args.quiet)
    print(f"wrote {args.output}: loss {r['loss_first']:.4f} -> {r['loss_last']:.4f}, held-out PSNR "
          f"{r['heldout_psnr_db']:.2f} dB, {r['params'] / 1e6:.2f}M parameters, {r['wall_s']:.0f} s")
    return 0
