"""`duet generate` and `duet ui`: make clips, from a command line or from a web page.

The page goes through `load_pipeline` and `generate_kwargs` too (`duet.ui.runner`), so a clip
made there is the clip that `duet generate` makes from the same settings. Imports of the
library are inside the functions, so that `duet --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from duet.memory import MemoryConfig
    from duet.pipeline import DuetPipeline
    from duet.train.parallel import Runtime


def generate(args: argparse.Namespace) -> int:
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
    """One clip: inputs read and the output path checked before the model loads."""
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
    from duet.inputs import MAX_GIVEN_DURATION
    from duet.media import check_length, read_mp4

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
            "stg_blocks": args.stg_blocks, "cross_modal_guidance": args.cross_modal_guidance,
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
    import numpy as np

    from duet.errors import InputError

    try:
        with av.open(path) as c:
            frame = next(c.decode(video=0))
    except (av.FFmpegError, StopIteration, OSError) as e:
        raise InputError(f"cannot read image {path!r} ({e}); pass a PNG or JPEG file") from None
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


def _has_scale(spec: str) -> bool:
    """Whether `DIR:SCALE` ends in a number (a path may itself contain ':')."""
    head, sep, tail = spec.rpartition(":")
    try:
        float(tail)
    except ValueError:
        return False
    return bool(sep and head)


def ui(args: argparse.Namespace) -> int:
    """Serve the web page; the model flags are passed on as `duet generate` would read them."""
    from duet.ui.server import serve

    model_argv = [f"--{name}={value}" for name in ("model", "weights", "device", "dtype")
                  if (value := getattr(args, name)) is not None]
    serve(model_argv, host=args.host, port=args.port)
    return 0
