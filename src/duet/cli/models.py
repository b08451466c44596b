"""`duet info`, `duet convert` and `duet doctor`: look into model files and convert them."""

from __future__ import annotations

import argparse
import json


def info(args: argparse.Namespace) -> int:
    """Parameter counts, default clip and latent sizes of a bundle or preset, built on `meta`
    (no weights are read, so it works for presets this install has no weights for)."""
    from duet.model import TwinModel
    from duet.weights import preset_or_bundle

    preset = preset_or_bundle(args.model)
    model = TwinModel.from_config(preset.model, device="meta")
    count = lambda m: sum(p.numel() for p in m.parameters())
    fusion = sum(p.numel() for n, p in model.named_parameters()
                 if "_fusion" in n or n.startswith("bridge."))
    media = preset.media
    frames = media.frames
    lf = media.latent_frames(frames)
    side = int(media.area**0.5) // media.size_multiple * media.size_multiple
    st = media.video_stride
    pt = preset.model.video.patch_size
    video_tokens = -(-lf // pt[0]) * (side // st[1] // pt[1]) * (side // st[2] // pt[2])
    report = {
        "preset": preset.name,
        "parameters": {"total": count(model), "video_tower": count(model.video_model),
                       "audio_tower": count(model.audio_model), "fusion": fusion},
        "default_clip": {"frames": frames, "fps": media.fps, "size": [side, side],
                         "sample_rate": media.sample_rate},
        "latents": {"video": [preset.model.video.in_dim, lf, side // st[1], side // st[2]],
                    "audio": [media.audio_length(frames), preset.model.audio.in_dim],
                    "video_tokens": video_tokens, "audio_tokens": media.audio_length(frames)},
        "rope_time_scale": preset.model.audio.rope_time_scale,
        "config": preset.to_dict(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    p = report["parameters"]
    print(f"{preset.name}: {p['total'] / 1e9:.3f}B parameters "
          f"(video {p['video_tower'] / 1e9:.3f}B, audio {p['audio_tower'] / 1e9:.3f}B, "
          f"of which fusion/bridge {fusion / 1e9:.3f}B)")
    print(f"default clip: {frames} frames @ {media.fps:g} fps, {side}x{side}, "
          f"{media.sample_rate} Hz audio")
    lat = report["latents"]
    print(f"latents: video {lat['video']} -> {video_tokens} tokens; audio {lat['audio']} -> "
          f"{lat['audio_tokens']} tokens; RoPE time scale {report['rope_time_scale']}")
    for name, tower in (("video", preset.model.video), ("audio", preset.model.audio)):
        print(f"{name} tower: dim {tower.dim}, {tower.num_layers} blocks, {tower.num_heads} heads, "
              f"ffn {tower.ffn_dim}, in/out {tower.in_dim}/{tower.out_dim}, text {tower.text_len}x{tower.text_dim}")
    if (b := preset.model.bridge) is not None:
        print(f"bridge: before video blocks {list(b.layers)}, dim {preset.model.bridge_dim}, "
              f"{b.num_heads} heads, {b.rope} RoPE, gains video {b.video_gain:g} audio {b.audio_gain:g}")
    return 0


def convert(args: argparse.Namespace) -> int:
    """A bundle from the official download (every component), from one DiT file, or from
    another bundle (LoRA adapters merged by --lora, cast to --dtype, its sampler defaults set
    by --set)."""
    from pathlib import Path

    from duet.errors import ConfigError
    from duet.lora import adapter_arg
    from duet.weights import BUNDLE_CONFIG, convert_bundle, convert_dit, dit_preset, write_bundle

    if (args.checkpoint is None) == (args.weights is None):
        raise ConfigError("pass either a DiT checkpoint file or --weights DIR (the whole official download)")
    bundle = args.checkpoint is not None and (Path(args.checkpoint) / BUNDLE_CONFIG).is_file()
    if args.set and not bundle:
        raise ConfigError("--set applies to a bundle directory (a trained run's final/); an "
                          "official checkpoint takes its sampler defaults from --preset")
    if args.lora and not bundle:
        raise ConfigError("--lora applies to a bundle directory (the base the adapter was "
                          "trained on); convert the official checkpoint first, then merge")
    if args.weights is not None:
        if args.preset is None:
            raise ConfigError("--weights needs --preset: ovi-720x720-5s, ovi-960x960-5s or "
                              "ovi-960x960-10s")
        if args.num_heads is not None or args.text_len is not None:
            raise ConfigError("--num-heads and --text-len are for a checkpoint without --preset; "
                              "--weights takes the preset's")
        out = write_bundle(args.weights, args.preset, args.output, args.dtype)
        print(f"wrote self-contained bundle {out} (preset {args.preset}; components hard-linked "
              "where possible)")
        return 0
    if bundle:
        if args.preset is not None or args.num_heads is not None or args.text_len is not None:
            raise ConfigError(f"{args.checkpoint} is a bundle: its config gives the shape, so "
                              "--preset, --num-heads and --text-len do not apply")
        out = convert_bundle(args.checkpoint, args.output, args.dtype, args.set,
                             [adapter_arg(spec) for spec in args.lora])
        merged = f", merged {len(args.lora)} LoRA adapter(s)" if args.lora else ""
        print(f"wrote bundle {out} (from {args.checkpoint}, weights {args.dtype or 'as stored'}"
              f"{merged})")
        return 0
    preset = dit_preset(args.checkpoint, args.preset, args.num_heads, args.text_len)
    out = convert_dit(args.checkpoint, preset, args.output, args.dtype)
    v = preset.model.video
    print(f"wrote bundle {out} (preset {preset.name}: {v.num_layers} layers, dim {v.dim}, "
          f"{v.num_heads} heads, text {v.text_len} rows)")
    return 0


def doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every component of at least one Ovi preset is usable, else 1."""
    from duet.doctor import doctor
    from duet.weights import DIT_FILES

    checks = doctor(args.weights)
    ok = {c.component for c in checks if c.status == "ok"}
    shared = {"video vae", "text encoder", "tokenizer", "audio vae", "vocoder"}
    usable = [p for p in DIT_FILES if f"dit {p}" in ok] if shared <= ok else []
    if args.json:
        print(json.dumps({"checks": [{**c.__dict__, "path": str(c.path)} for c in checks],
                          "usable_presets": usable}, indent=2))
    else:
        for c in checks:
            print(f"{c.status.upper():8} {c.component:22} {c.path}\n{'':9}{c.detail}")
        print(f"usable presets: {', '.join(usable) or 'none'}")
    return 0 if usable else 1
