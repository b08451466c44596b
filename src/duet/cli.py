"""`duet generate | ui | info | convert | doctor | eval sync | eval seams | train | data build | data curate | codec train`: parse arguments, call the library, print.

A `DuetError` becomes one line on stderr and exit code 2; no partial file is left behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from duet.errors import DuetError

if TYPE_CHECKING:
    from duet.memory import MemoryConfig
    from duet.pipeline import DuetPipeline
    from duet.train.parallel import Runtime

log = logging.getLogger("duet")


def _generate_command(args: argparse.Namespace) -> int:
    """`duet generate` in one process or, with --sequence-parallel under torchrun, as one of
    the processes that split the model's tokens (each joins the group; rank 0 writes)."""
    from duet.errors import ConfigError

    world = os.environ.get("WORLD_SIZE")
    if not args.sequence_parallel:
        if world is not None and int(world) > 1:
            raise ConfigError(f"launched as {world} processes: pass --sequence-parallel to split "
                              "the work between them (else each would make the same clip)")
        return _generate(args)
    if world is None:
        raise ConfigError("--sequence-parallel runs under torchrun: "
                          "torchrun --nproc-per-node N -m duet generate ... --sequence-parallel")
    from duet.train.parallel import init_runtime

    runtime = init_runtime(args.device)  # this rank's device, e.g. cuda:LOCAL_RANK
    try:
        return _generate(args, runtime)
    finally:
        runtime.close()


def _generate(args: argparse.Namespace, runtime: Runtime | None = None) -> int:
    from duet.loading import RANDOM_INIT_WARNING

    from duet.media import check_clip_path

    container = check_clip_path(args.output)  # a bad -o fails now, not after the work
    inputs = read_inputs(args)  # read before loading
    t0 = time.perf_counter()
    pipe = load_pipeline(args, runtime.device if runtime is not None else args.device)
    if runtime is not None:
        pipe.enable_sequence_parallel()
    is_main = runtime is None or runtime.is_main
    kwargs = generate_kwargs(args, pipe, inputs)
    if pipe.random_init and is_main:
        bar = "!" * 78
        print(f"{bar}\n!! WARNING: {RANDOM_INIT_WARNING}\n{bar}", file=sys.stderr)
    loaded = time.perf_counter()
    clip = pipe(args.prompt, **kwargs, progress=not args.quiet and is_main)
    if not is_main:  # every rank holds the same clip; one writes it
        return 0
    path = clip.save(args.output)
    if not args.quiet:
        t = clip.video.shape
        sound = f"{clip.audio.shape[0] / clip.sample_rate:.2f} s audio @ {clip.sample_rate} Hz"
        picture = f"{t[0]} frames {t[2]}x{t[1]} @ {clip.fps:g} fps + "
        what = sound if container == "wav" else picture + sound
        print(f"wrote {path}: {what} "
              f"(load {loaded - t0:.1f} s, generate {time.perf_counter() - loaded:.1f} s)")
    if pipe.random_init:
        print(f"!! {path} was made by a RANDOMLY INITIALISED model: it is noise.", file=sys.stderr)
    return 0


@dataclass(frozen=True)
class GivenInputs:
    """The files `duet generate` conditions on, read before the model loads so that a bad
    file fails in a second: the first frame (uint8 [H, W, 3]), a given video (`read_mp4`) and
    a long clip's prompt schedule (`--schedule`)."""

    image: np.ndarray | None
    video: Any
    schedule: tuple[Any, ...] = ()


def read_inputs(args: argparse.Namespace) -> GivenInputs:
    """Check the lengths of --from-video / --from-audio and read --image, --from-video and
    --schedule."""
    from duet.chunks import read_schedule
    from duet.media import check_length, read_mp4
    from duet.inputs import MAX_GIVEN_DURATION

    schedule = read_schedule(args.schedule) if args.schedule is not None else ()
    for source in (args.from_video, args.from_audio):
        if source is not None:
            check_length(source, MAX_GIVEN_DURATION)
    image = _read_image(args.image) if args.image is not None else None
    video = read_mp4(args.from_video) if args.from_video is not None else None
    return GivenInputs(image, video, tuple(schedule))


def load_pipeline(args: argparse.Namespace, device: Any = None) -> DuetPipeline:
    """The pipeline the model flags of `duet generate` name, with its --lora adapters merged
    in order (`duet ui` loads through here too, so both run the same weights)."""
    from duet.pipeline import DuetPipeline

    model = args.model or ("ovi-720x720-5s" if args.weights else "demo")
    pipe = DuetPipeline.from_pretrained(model, weights=args.weights, device=device,
                                        dtype=args.dtype, memory=_memory(args))
    for spec in args.lora:
        path, _, scale = spec.rpartition(":") if _has_scale(spec) else (spec, "", "1")
        pipe.load_lora(path, float(scale))
    if getattr(args, "compile", False):
        pipe.model.compile_blocks()
    return pipe


def generate_kwargs(args: argparse.Namespace, pipe: DuetPipeline,
                    inputs: GivenInputs) -> dict[str, Any]:
    """The keyword arguments of the pipeline call that `duet generate` makes (all but the
    prompt and `progress`); `duet ui` calls the pipeline with these too, so that a page and a
    command line with the same settings give the same clip."""
    from duet.media import read_audio, retime_frames

    from_video = from_audio = None
    if inputs.video is not None:
        from_video = retime_frames(inputs.video.frames, inputs.video.fps, pipe.preset.media.fps)
    if args.from_audio is not None:
        from_audio = read_audio(args.from_audio, pipe.audio_codec.sample_rate)
    return {"height": args.height, "width": args.width, "duration": args.duration,
            "steps": args.steps, "shift": args.shift, "solver": args.solver,
            "video_guidance": args.video_guidance, "audio_guidance": args.audio_guidance,
            "video_negative": args.video_negative, "audio_negative": args.audio_negative,
            "slg": not args.no_slg, "stg_guidance": args.stg_guidance,
            "stg_blocks": args.stg_blocks, "cross_modal_guidance": args.bridge_guidance,
            "guidance_rescale": args.guidance_rescale, "image": inputs.image,
            "from_video": from_video, "from_audio": from_audio, "seed": args.seed,
            "then": args.then, "schedule": inputs.schedule, "overlap": args.overlap}


def _memory(args: argparse.Namespace) -> MemoryConfig:
    """The memory flags of `duet generate` (see `duet.memory`)."""
    from duet.memory import MemoryConfig

    return MemoryConfig(offload=args.offload, weights_dtype=args.weights_dtype,
                        free_text_encoder=False if args.keep_text_encoder else None,
                        vae_tiling=args.vae_tiling)


def _read_image(path: str) -> np.ndarray:
    import av

    from duet.errors import InputError

    try:
        with av.open(path) as c:
            frame = next(c.decode(video=0))
    except (av.FFmpegError, StopIteration, OSError) as e:
        raise InputError(f"cannot read image {path!r} ({e}); pass a PNG or JPEG file") from None
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def _ui(args: argparse.Namespace) -> int:
    from duet.ui.server import serve

    model_argv = [f"--{name}={value}" for name in ("model", "weights", "device", "dtype")
                  if (value := getattr(args, name)) is not None]
    serve(model_argv, host=args.host, port=args.port)
    return 0


def _info(args: argparse.Namespace) -> int:
    from duet.weights import read_config
    from duet.config import get_preset
    from duet.model import TwinModel

    path = Path(args.model)
    preset = read_config(path)[0] if path.is_dir() else get_preset(args.model)
    model = TwinModel.from_config(preset.model, device="meta")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    fusion = sum(p.numel() for n, p in model.named_parameters()
                 if "_fusion" in n or n.startswith("bridge."))
    media = preset.media
    frames = media.frames
    lf = media.latent_frames(frames)
    side = int(media.area**0.5) // media.size_multiple * media.size_multiple
    st = media.video_stride
    pt = preset.model.video.patch_size
    video_tokens = -(-lf // pt[0]) * (side // st[1] // pt[1]) * (side // st[2] // pt[2])
    info = {
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
        print(json.dumps(info, indent=2))
        return 0
    p = info["parameters"]
    print(f"{preset.name}: {p['total'] / 1e9:.3f}B parameters "
          f"(video {p['video_tower'] / 1e9:.3f}B, audio {p['audio_tower'] / 1e9:.3f}B, "
          f"of which fusion/bridge {fusion / 1e9:.3f}B)")
    print(f"default clip: {frames} frames @ {media.fps:g} fps, {side}x{side}, "
          f"{media.sample_rate} Hz audio")
    lat = info["latents"]
    print(f"latents: video {lat['video']} -> {video_tokens} tokens; audio {lat['audio']} -> "
          f"{lat['audio_tokens']} tokens; RoPE time scale {info['rope_time_scale']}")
    for name, tower in (("video", preset.model.video), ("audio", preset.model.audio)):
        print(f"{name} tower: dim {tower.dim}, {tower.num_layers} blocks, {tower.num_heads} heads, "
              f"ffn {tower.ffn_dim}, in/out {tower.in_dim}/{tower.out_dim}, text {tower.text_len}x{tower.text_dim}")
    if (b := preset.model.bridge) is not None:
        print(f"bridge: before video blocks {list(b.layers)}, dim {preset.model.bridge_dim}, "
              f"{b.num_heads} heads, {b.rope} RoPE, gains video {b.video_gain:g} audio {b.audio_gain:g}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from duet.errors import ConfigError
    from duet.weights import convert_dit, dit_preset, write_bundle

    if (args.checkpoint is None) == (args.weights is None):
        raise ConfigError("pass either a DiT checkpoint file or --weights DIR (the whole official download)")
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
    preset = dit_preset(args.checkpoint, args.preset, args.num_heads, args.text_len)
    out = convert_dit(args.checkpoint, preset, args.output, args.dtype)
    v = preset.model.video
    print(f"wrote bundle {out} (preset {preset.name}: {v.num_layers} layers, dim {v.dim}, "
          f"{v.num_heads} heads, text {v.text_len} rows)")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    """Exit 0 when every component of at least one Ovi preset is usable, else 1."""
    from duet.weights import DIT_FILES, doctor

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


def _eval_sync(args: argparse.Namespace) -> int:
    from duet.eval.sync import measure_file, merge

    reports = {path: measure_file(path) for path in args.clips}
    total = merge(reports.values())
    if args.json:
        rows = {**{p: r.to_dict() for p, r in reports.items()}, "all": total.to_dict()}
        print(json.dumps(rows, indent=2, allow_nan=False))
        return 0
    print("| clip | pairs | median offset ms | median abs ms | within 1 frame | within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in [*reports.items(), ("all", total)]:
        print(f"| {name} | {r.table_cells()} |")
    return 0


def _eval_seams(args: argparse.Namespace) -> int:
    from duet.weights import read_config
    from duet.config import get_preset
    from duet.eval.seams import VIDEO_LIMIT, measure_file

    path = Path(args.model)
    preset = read_config(path)[0] if path.is_dir() else get_preset(args.model)
    seams = measure_file(args.clip, preset.media, args.overlap)
    if args.json:
        print(json.dumps([s.to_dict() for s in seams], indent=2, allow_nan=False))
        return 0
    print(f"| seam s | picture change / in-chunk median (target <= {VIDEO_LIMIT:g}) | ordinary "
          "stretch | click (limit) | level step dB (limit) | level dB (range) | picture | sound |")
    print("|---|---|---|---|---|---|---|---|")
    for s in seams:
        lo, hi = s.level_range_db
        print(f"| {s.time:.2f} | {s.video_ratio:.2f} | {s.video_ordinary:.2f} | "
              f"{s.click:.3f} ({s.click_limit:.3f}) | "
              f"{s.level_step_db:.1f} ({s.level_step_limit_db:.1f}) | "
              f"{s.level_db:.1f} ({lo:.1f}..{hi:.1f}) | {'ok' if s.video_ok else 'SEAM'} | "
              f"{'ok' if s.audio_ok else 'SEAM'} |")
    return 0


def _train(args: argparse.Namespace) -> int:
    from duet.train.trainer import main as train_main

    logging.getLogger("duet").setLevel(logging.INFO)  # step logs and checkpoint messages
    return train_main([args.config, *(["-q"] if args.quiet else []), *(["--lora"] if args.lora else [])])


def _rl(args: argparse.Namespace) -> int:
    from duet.train.rl.trainer import main as rl_main

    logging.getLogger("duet").setLevel(logging.INFO)  # step logs and checkpoint messages
    return rl_main([args.config, *(["-q"] if args.quiet else [])])


def _data_build(args: argparse.Namespace) -> int:
    from duet.config import get_preset
    from duet.data.dataset import build_shards, world_config_for

    preset = get_preset(args.preset)
    overrides = {k: tuple(v.split(",")) for k, v in (("kinds", args.kinds), ("materials", args.materials)) if v}
    seeds = range(args.start_seed, args.start_seed + args.clips)
    paths = build_shards(args.output, preset, seeds, shard_size=args.shard_size,
                         config=world_config_for(preset, **overrides), progress=not args.quiet)
    print(f"wrote {len(paths)} shards ({args.clips} clips) to {args.output}")
    return 0


def _data_curate(args: argparse.Namespace) -> int:
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


def _codec_train(args: argparse.Namespace) -> int:
    from duet.train.codec import config_from_args, train_frame_codec

    cfg = config_from_args(args.output, clips=args.clips, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, latent_noise=args.latent_noise,
                           seed=args.seed)
    r = train_frame_codec(cfg, progress=not args.quiet)
    print(f"wrote {args.output}: loss {r['loss_first']:.4f} -> {r['loss_last']:.4f}, held-out PSNR "
          f"{r['heldout_psnr_db']:.2f} dB, {r['params'] / 1e6:.2f}M parameters, {r['wall_s']:.0f} s")
    return 0


def _has_scale(spec: str) -> bool:
    """Whether `DIR:SCALE` ends in a number (a path may itself contain ':')."""
    head, sep, tail = spec.rpartition(":")
    try:
        float(tail)
    except ValueError:
        return False
    return bool(sep and head)


def _scales(text: str) -> float | tuple[float, float]:
    """`S` or `V,A`: one guidance scale for both modalities, or video,audio."""
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected one number or two as video,audio, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _ints(text: str) -> tuple[int, ...]:
    """`I,J,...`: block indices."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block indices like 5 or 3,5, got {text!r}") from None


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                 ) -> argparse.ArgumentParser:
    """The command line; `duet ui` parses its settings with a `parser_class` whose `error`
    raises instead of exiting (subparsers inherit the class)."""
    p = parser_class(prog="duet", description="Joint audio-video generation.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate an MP4 (video + audio) from a prompt")
    g.add_argument("prompt", help='e.g. "a man says <S>hello<E> <AUDCAP>a calm voice<ENDAUDCAP>"')
    g.add_argument("-o", "--output", default="duet.mp4",
                   help="output file: .mp4 or .mkv (video + sound), .wav (the sound alone)")
    g.add_argument("--model", help="bundle directory or preset name (default: demo; with --weights: "
                                   "ovi-720x720-5s, ovi-960x960-5s or ovi-960x960-10s)")
    g.add_argument("--weights", metavar="DIR",
                   help="the official Ovi download (Ovi/, Wan2.2-TI2V-5B/, MMAudio/); see duet doctor")
    g.add_argument("--steps", type=int, help="denoising steps (preset default)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--video-guidance", type=float, help="CFG scale for video (Ovi: 4.0)")
    g.add_argument("--audio-guidance", type=float, help="CFG scale for audio (Ovi: 3.0)")
    g.add_argument("--video-negative", help="negative prompt of the video tower")
    g.add_argument("--audio-negative", help="negative prompt of the audio tower")
    g.add_argument("--no-slg", action="store_true", help="disable skip-layer guidance")
    g.add_argument("--stg-guidance", type=_scales, default=0.0, metavar="S|V,A",
                   help="STG scale (weak pass skipping --stg-blocks), one or video,audio (0 = off)")
    g.add_argument("--stg-blocks", type=_ints, metavar="I[,J...]",
                   help="blocks the STG pass skips (default: the middle block)")
    g.add_argument("--bridge-guidance", type=_scales, default=1.0, metavar="S|V,A",
                   help="dual-CFG bridge scale: cond vs cross-modal off, one or video,audio (1 = off)")
    g.add_argument("--guidance-rescale", type=float, default=0.0, metavar="PHI",
                   help="std rescale of the guided prediction, 0..1 (0 = off)")
    g.add_argument("--height", type=int)
    g.add_argument("--width", type=int)
    g.add_argument("--duration", type=float,
                   help="seconds (preset default); longer than the model's clip: made in chunks")
    g.add_argument("--then", action="append", default=[], metavar="PROMPT",
                   help="prompt of the next chunk of a long clip (repeat; the last carries on)")
    g.add_argument("--schedule", metavar="FILE",
                   help='prompt changes of a long clip: JSON [{"at": SECONDS, "prompt": TEXT}]')
    g.add_argument("--overlap", type=int, metavar="K",
                   help="latent frames each chunk shares with the one before "
                        "(about 1/2 s; half held, half crossfaded)")
    g.add_argument("--shift", type=_scales, metavar="S|V,A",
                   help="sigma shift, one or video,audio for a grid per modality (Ovi: 5.0)")
    g.add_argument("--solver", choices=["unipc", "euler"])
    g.add_argument("--image", help="first frame (PNG/JPEG) for image-to-audio-video")
    g.add_argument("--from-video", metavar="CLIP.mp4",
                   help="video-to-audio: keep this video, generate its sound (sets the duration)")
    g.add_argument("--from-audio", metavar="SOUND",
                   help="audio-to-video: keep this sound (WAV, MP3, an MP4's track...), generate the picture")
    g.add_argument("--device", help="cpu or cuda[:N] (default: cuda if available)")
    g.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]",
                   help="merge a LoRA adapter into the model (repeatable; scale default 1)")
    g.add_argument("--offload", action="store_true",
                   help="keep the DiT blocks in CPU memory, each moved to the GPU only to run")
    g.add_argument("--weights-dtype", choices=["fp8", "int8"],
                   help="store the DiT blocks' linear weights in fp8 or int8 (about half of bf16)")
    g.add_argument("--vae-tiling", action="store_true",
                   help="encode/decode video in tiles (codecs with a tiled option: wan2.2-vae)")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile the DiT blocks: faster steps on a GPU (about 10 %% on a "
                        "CPU) after a one-off compilation; falls back to eager if it fails")
    g.add_argument("--keep-text-encoder", action="store_true",
                   help="keep the text encoder loaded after encoding (default on GPU: free it)")
    g.add_argument("--sequence-parallel", action="store_true",
                   help="under torchrun: split each modality's tokens over the processes "
                        "(Ulysses); rank 0 writes the MP4")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    g.set_defaults(func=_generate_command)

    u = sub.add_parser("ui", help="serve a web page that generates clips (needs duet[ui])")
    u.add_argument("--model", help="bundle directory or preset name (as duet generate)")
    u.add_argument("--weights", metavar="DIR", help="the official Ovi download (as duet generate)")
    u.add_argument("--device", help="cpu or cuda[:N] (default: cuda if available)")
    u.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    u.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: this machine only; 0.0.0.0 opens it to the network)")
    u.add_argument("--port", type=int, default=7860)
    u.set_defaults(func=_ui)

    i = sub.add_parser("info", help="config, parameter counts and latent sizes of a model")
    i.add_argument("model", help="bundle directory or preset name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    c = sub.add_parser("convert", help="official Ovi checkpoint (safetensors) -> Duet bundle")
    c.add_argument("checkpoint", nargs="?", help="e.g. Ovi/model.safetensors (the DiT alone)")
    c.add_argument("--weights", metavar="DIR",
                   help="instead: the whole official download -> a bundle with every component")
    c.add_argument("--preset", help="check the file against this preset (ovi-720x720-5s, "
                   "ovi-960x960-5s, ovi-960x960-10s); without it the model's shape is read from the "
                   "file, with the 720x720 5 s media and sampler defaults")
    c.add_argument("--num-heads", type=int, help="without --preset: attention heads per tower, "
                   "which the weights do not record (default: width / 128, as in Wan and Ovi)")
    c.add_argument("--text-len", type=int, help="without --preset: text rows the context is "
                   "padded to (default 512, as in Ovi)")
    c.add_argument("-o", "--output", required=True, help="bundle directory to write")
    c.add_argument("--dtype", help="store weights in this dtype (e.g. bfloat16)")
    c.set_defaults(func=_convert)

    dr = sub.add_parser("doctor", help="check an official Ovi weights folder, file by file")
    dr.add_argument("--weights", metavar="DIR", required=True, help="the official Ovi download")
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=_doctor)

    e = sub.add_parser("eval", help="objective measurements of generated clips")
    esub = e.add_subparsers(dest="measure", required=True)
    es = esub.add_parser("sync", help="audio-visual sync of synthetic-world clips (from the MP4 alone)")
    es.add_argument("clips", nargs="+", help="MP4 files")
    es.add_argument("--json", action="store_true")
    es.set_defaults(func=_eval_sync)
    em = esub.add_parser("seams", help="picture and sound at the seams of a clip made in chunks")
    em.add_argument("clip", help="an MP4 longer than the model's clip, made by duet generate")
    em.add_argument("--model", default="demo", help="the bundle or preset that made it")
    em.add_argument("--overlap", type=int, metavar="K", help="as given to duet generate")
    em.add_argument("--json", action="store_true")
    em.set_defaults(func=_eval_seams)

    t = sub.add_parser("train", help="train or fine-tune a model (also under torchrun)")
    t.add_argument("config", help="training config (.json or .toml); see README")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.add_argument("--lora", action="store_true",
                   help="train LoRA adapters on the config's init_from (exports adapter files only)")
    t.set_defaults(func=_train)

    r = sub.add_parser("rl", help="RL fine-tuning (OmniNFT) of a model (also under torchrun)")
    r.add_argument("config", help="RL config (.json or .toml); see docs/rl.md")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_rl)

    d = sub.add_parser("data", help="training data")
    dsub = d.add_subparsers(dest="action", required=True)
    db = dsub.add_parser("build", help="synthetic-world clips -> latent shards for a preset")
    db.add_argument("-o", "--output", required=True, help="shard directory")
    db.add_argument("--preset", default="demo", help="preset whose codecs and text encoder to use")
    db.add_argument("--clips", type=int, default=1024)
    db.add_argument("--start-seed", type=int, default=0)
    db.add_argument("--shard-size", type=int, default=256)
    db.add_argument("--kinds", metavar="K[,K]", help="clip kinds to draw: bounce,talk (default both)")
    db.add_argument("--materials", metavar="M[,M...]",
                    help="ball materials (default rubber,metal,glass,wood; bronze is a new concept)")
    db.add_argument("-q", "--quiet", action="store_true")
    db.set_defaults(func=_data_build)

    dc = dsub.add_parser("curate", help="real videos -> filtered, captioned clips -> latent shards")
    dc.add_argument("input", help="folder of videos, or a .txt file listing one path per line")
    dc.add_argument("-o", "--output", required=True, help="shard directory (also holds parts/)")
    dc.add_argument("--config", help="curate config (.json or .toml): thresholds, captions, SyncNet")
    dc.add_argument("--report", help="per-clip report (JSON lines; default OUTPUT/report.jsonl)")
    dc.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                    help="run as a Ray Data pipeline: a local Ray instance, or the cluster at ADDRESS")
    dc.add_argument("--preset", help="overrides the config's preset (default demo)")
    dc.add_argument("--workers", type=int, help="overrides the config's worker count")
    dc.add_argument("-q", "--quiet", action="store_true")
    dc.set_defaults(func=_data_curate)

    k = sub.add_parser("codec", help="the demo model's learned video codec")
    ksub = k.add_subparsers(dest="action", required=True)
    kt = ksub.add_parser("train", help="train a frame autoencoder on synthetic-world frames")
    kt.add_argument("-o", "--output", required=True, help="safetensors file to write")
    kt.add_argument("--clips", type=int, help="world clips rendered for training frames (384)")
    kt.add_argument("--steps", type=int, help="optimizer steps (1500)")
    kt.add_argument("--batch-size", type=int, help="frames per step (32)")
    kt.add_argument("--lr", type=float, help="peak AdamW learning rate (2e-3)")
    kt.add_argument("--latent-noise", type=float,
                    help="Gaussian noise on the latents while training, in units of each "
                         "channel's std (0.1)")
    kt.add_argument("--seed", type=int)
    kt.add_argument("-q", "--quiet", action="store_true")
    kt.set_defaults(func=_codec_train)
    return p


# Loggers (and warning sources) of the libraries whose notices the CLI hides.
_CHATTY = ("torchao", "transformers", "diffusers", "safetensors", "huggingface_hub",
           "torch.utils._pytree")


def _quiet_libraries() -> None:
    """Keep the libraries' own chatter off the terminal: torchao's and torch's import-time
    notices, transformers' "Loading weights" bar, deprecation warnings. The CLI shows its own
    progress bars and Duet's warnings; this is a choice for the CLI's process, so it is made
    here and not in the library. The variables are read when those libraries are imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=rf"({'|'.join(_CHATTY)})(\.|$)")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="duet: %(levelname)s: %(message)s")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DuetError as e:
        print(f"duet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; atomic writes left no partial file
        print("duet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
