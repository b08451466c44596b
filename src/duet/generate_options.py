"""The options of `duet generate` and what they do: the flags (`add_generate_options`), the
files they name (`read_inputs`), the pipeline they load (`load_pipeline`) and the call they
make (`generate_kwargs`).

Both front ends read their settings through here: `duet generate` (`duet.cli`) and the web
page (`duet.ui`), which writes its widgets as these flags. So a clip made in the page is the
clip that `duet generate` makes from the same command line, and neither front end imports
the other. Imports of the library are inside the functions, so that `duet --help` stays
fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from duet.memory import MemoryConfig
    from duet.pipeline import DuetPipeline


def add_generate_options(g: argparse.ArgumentParser) -> None:
    """Every argument of `duet generate`: the prompt, the output and the options below."""
    g.add_argument("prompt", help='e.g. "a man says <S>hello<E> <AUDCAP>a calm voice<ENDAUDCAP>"')
    g.add_argument("-o", "--output", default="duet.mp4",
                   help="output file: .mp4 or .mkv (video + sound), .wav (the sound alone)")
    _model_options(g)
    g.add_argument("--steps", type=int, help="denoising steps (preset default)")
    g.add_argument("--seed", type=int, default=0)
    _guidance_options(g)
    _clip_options(g)
    _memory_options(g)
    g.add_argument("--sequence-parallel", action="store_true",
                   help="under torchrun: split each modality's tokens over the processes "
                        "(Ulysses); rank 0 writes the MP4")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


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


def _model_options(g: argparse.ArgumentParser) -> None:
    """Which model `duet generate` runs, where, and the adapters merged into it."""
    g.add_argument("--model", help="bundle directory or preset name (default: demo; with --weights: "
                                   "ovi-720x720-5s, ovi-960x960-5s or ovi-960x960-10s)")
    g.add_argument("--weights", metavar="DIR",
                   help="the official Ovi download (Ovi/, Wan2.2-TI2V-5B/, MMAudio/); see duet doctor")
    g.add_argument("--device", help="cpu or cuda[:N] (default: cuda if available)")
    g.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]",
                   help="merge a LoRA adapter into the model (repeatable; scale default 1)")


def _guidance_options(g: argparse.ArgumentParser) -> None:
    """The guidance terms of `duet.sampling.guidance`; unset ones take the preset's."""
    g.add_argument("--video-guidance", type=float, help="CFG scale for video (Ovi: 4.0)")
    g.add_argument("--audio-guidance", type=float, help="CFG scale for audio (Ovi: 3.0)")
    g.add_argument("--video-negative", help="negative prompt of the video tower")
    g.add_argument("--audio-negative", help="negative prompt of the audio tower")
    g.add_argument("--no-slg", action="store_true", help="disable skip-layer guidance")
    g.add_argument("--stg-guidance", type=_scales, default=0.0, metavar="S|V,A",
                   help="STG scale (weak pass skipping --stg-blocks), one or video,audio (0 = off)")
    g.add_argument("--stg-blocks", type=_ints, metavar="I[,J...]",
                   help="blocks the STG pass skips (default: the middle block)")
    # --bridge-guidance: the flag's name before the rename, kept so that old commands run
    g.add_argument("--cross-modal-guidance", "--bridge-guidance", type=_scales, default=1.0,
                   metavar="S|V,A",
                   help="cross-modal guidance (MOVA's dual CFG): cond vs the fusion off, one or "
                        "video,audio (1 = off)")
    g.add_argument("--guidance-rescale", type=float, default=0.0, metavar="PHI",
                   help="std rescale of the guided prediction, 0..1 (0 = off)")
    g.add_argument("--shift", type=_scales, metavar="S|V,A",
                   help="sigma shift, one or video,audio for a grid per modality (Ovi: 5.0)")
    g.add_argument("--solver", choices=["unipc", "euler"])


def _clip_options(g: argparse.ArgumentParser) -> None:
    """The clip's size and length, long clips' prompts, and a given picture or sound."""
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
    g.add_argument("--image", help="first frame (PNG/JPEG) for image-to-audio-video")
    g.add_argument("--from-video", metavar="CLIP.mp4",
                   help="video-to-audio: keep this video, generate its sound (sets the duration)")
    g.add_argument("--from-audio", metavar="SOUND",
                   help="audio-to-video: keep this sound (WAV, MP3, an MP4's track...), generate the picture")


def _memory_options(g: argparse.ArgumentParser) -> None:
    """How the model fits and runs on the device (`duet.memory`)."""
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
    """The pipeline the model flags name, with its --lora adapters merged in order (the
    page loads through here too, so both front ends run the same weights)."""
    from duet.lora import adapter_arg
    from duet.pipeline import DuetPipeline

    model = args.model or ("ovi-720x720-5s" if args.weights else "demo")
    pipe = DuetPipeline.from_pretrained(model, weights=args.weights, device=device,
                                        dtype=args.dtype, memory=_memory(args))
    for spec in args.lora:
        pipe.load_lora(*adapter_arg(spec))
    if getattr(args, "compile", False):
        pipe.model.compile_blocks()
    return pipe


def generate_kwargs(args: argparse.Namespace, pipe: DuetPipeline,
                    inputs: GivenInputs) -> dict[str, Any]:
    """The keyword arguments of the pipeline call that `duet generate` makes (all but the
    prompt and `progress`); the page calls the pipeline with these too, so that a page and a
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
    """The memory flags (see `duet.memory`)."""
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
