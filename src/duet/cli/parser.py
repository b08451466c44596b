"""The `duet` command line: one small function per subcommand adds its arguments.

Only argparse and the handler modules are imported here (they import the library inside
their functions), so that `duet --help` does not load torch.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from duet.cli import evaluate, generate, models, training

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                 ) -> argparse.ArgumentParser:
    """The command line; `duet ui` parses its settings with a `parser_class` whose `error`
    raises instead of exiting (subparsers inherit the class)."""
    p = parser_class(prog="duet", description="Joint audio-video generation.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_generate, _ui, _info, _convert, _doctor, _eval, _train, _rl, _data, _codec):
        add(sub)
    return p


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


def _generate(sub: Sub) -> None:
    g = sub.add_parser("generate", help="generate an MP4 (video + audio) from a prompt")
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
    g.set_defaults(func=generate.generate)


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


def _ui(sub: Sub) -> None:
    u = sub.add_parser("ui", help="serve a web page that generates clips (needs duet[ui])")
    u.add_argument("--model", help="bundle directory or preset name (as duet generate)")
    u.add_argument("--weights", metavar="DIR", help="the official Ovi download (as duet generate)")
    u.add_argument("--device", help="cpu or cuda[:N] (default: cuda if available)")
    u.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    u.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: this machine only; 0.0.0.0 opens it to the network)")
    u.add_argument("--port", type=int, default=7860)
    u.set_defaults(func=generate.ui)


def _info(sub: Sub) -> None:
    i = sub.add_parser("info", help="config, parameter counts and latent sizes of a model")
    i.add_argument("model", help="bundle directory or preset name")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=models.info)


def _convert(sub: Sub) -> None:
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
    c.set_defaults(func=models.convert)


def _doctor(sub: Sub) -> None:
    dr = sub.add_parser("doctor", help="check an official Ovi weights folder, file by file")
    dr.add_argument("--weights", metavar="DIR", required=True, help="the official Ovi download")
    dr.add_argument("--json", action="store_true")
    dr.set_defaults(func=models.doctor)


def _eval(sub: Sub) -> None:
    e = sub.add_parser("eval", help="objective measurements of generated clips")
    esub = e.add_subparsers(dest="measure", required=True)
    es = esub.add_parser("sync", help="audio-visual sync of synthetic-world clips (from the MP4 alone)")
    es.add_argument("clips", nargs="+", help="MP4 files")
    es.add_argument("--json", action="store_true")
    es.set_defaults(func=evaluate.eval_sync)
    em = esub.add_parser("seams", help="picture and sound at the seams of a clip made in chunks")
    em.add_argument("clip", help="an MP4 longer than the model's clip, made by duet generate")
    em.add_argument("--model", default="demo", help="the bundle or preset that made it")
    em.add_argument("--overlap", type=int, metavar="K", help="as given to duet generate")
    em.add_argument("--json", action="store_true")
    em.set_defaults(func=evaluate.eval_seams)


def _train(sub: Sub) -> None:
    t = sub.add_parser("train", help="train or fine-tune a model (also under torchrun)")
    t.add_argument("config", help="training config (.json or .toml); see README")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.add_argument("--lora", action="store_true",
                   help="train LoRA adapters on the config's init_from (exports adapter files only)")
    _add_set(t)
    t.set_defaults(func=training.train)


def _rl(sub: Sub) -> None:
    r = sub.add_parser("rl", help="RL fine-tuning (OmniNFT) of a model (also under torchrun)")
    r.add_argument("config", help="RL config (.json or .toml); see docs/rl.md")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_set(r)
    r.set_defaults(func=training.rl)


def _data(sub: Sub) -> None:
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
    db.set_defaults(func=training.data_build)

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
    dc.set_defaults(func=training.data_curate)


def _codec(sub: Sub) -> None:
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
    kt.set_defaults(func=training.codec_train)


def _add_set(p: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE`: one checked-in config serves its variants (recipes use it)."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key: dotted.key=JSON value (repeatable)")
