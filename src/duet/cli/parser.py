"""The `duet` command line: one small function per subcommand adds its arguments.

Only argparse, the handler modules and `duet.generate_options` (the flags `duet generate`
shares with the web page) are imported here; they import the library inside their
functions, so that `duet --help` does not load torch.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from duet.cli import evaluate, generate, models, training
from duet.generate_options import add_generate_options

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns


def build_parser() -> argparse.ArgumentParser:
    """The command line: each subcommand's arguments and its handler (`args.func`)."""
    p = argparse.ArgumentParser(prog="duet", description="Joint audio-video generation.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_generate, _ui, _info, _convert, _doctor, _eval, _train, _rl, _data, _codec):
        add(sub)
    return p


def _generate(sub: Sub) -> None:
    g = sub.add_parser("generate", help="generate an MP4 (video + audio) from a prompt")
    add_generate_options(g)
    g.set_defaults(func=generate.generate)


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
    c = sub.add_parser("convert", help="official Ovi checkpoint (safetensors) -> Duet bundle, "
                       "or a bundle -> a copy in another dtype")
    c.add_argument("checkpoint", nargs="?", help="e.g. Ovi/model.safetensors (the DiT alone), or "
                   "a bundle directory (e.g. a trained run's final/) to copy with --dtype")
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
    c.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]",
                   help="for a bundle: merge this LoRA adapter (a `duet rl` or `duet train` "
                   "run's final/) into the copy's weights, W += SCALE (alpha/r) B A; repeat "
                   "to merge several in order")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="for a bundle: a sampler default the copy ships with "
                   "(sampler.video_guidance=1.0, sampler.video_negative=) or its note=TEXT")
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
    es.add_argument("--chance", action="store_true",
                    help="add the ruler's chance level: the same clips with each clip's onsets "
                         "moved around it, so picture and sound no longer belong together")
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
    db.add_argument("--video-codec-weights", metavar="FILE",
                    help="frame codec file to encode with instead of the preset's (`duet codec "
                         "train`); train on the shards with codecs.video.weights set to it")
    db.add_argument("--clips", type=int, default=1024)
    db.add_argument("--start-seed", type=int, default=0)
    db.add_argument("--shard-size", type=int, default=256)
    db.add_argument("--kinds", metavar="K[,K]", help="clip kinds to draw: bounce,talk (default both)")
    db.add_argument("--materials", metavar="M[,M...]",
                    help="ball materials (default rubber,metal,glass,wood; bronze is a new concept)")
    db.add_argument("--max-balls", type=int, choices=(1, 2), help="balls per bounce clip, at most (default 2)")
    db.add_argument("--drop-in", type=float, metavar="P",
                    help="probability that a ball drops in from above mid-clip instead of being in "
                         "flight from the first frame (default 0.5)")
    db.add_argument("--gravity", type=float, metavar="G",
                    help="frame heights per s^2 (default 6.25: a fall through the frame takes "
                         "0.55 s); lower is a slower world")
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
    kt.add_argument("--chroma-weight", type=float,
                    help="weight of the colour error against the luma error (1: plain RGB MSE)")
    kt.add_argument("--interp-weight", type=float,
                    help="weight of the term that makes the mean of two frames' latents decode "
                         "to the frame between them (0: off)")
    kt.add_argument("--latent-channels", type=int, help="learned latent channels (16)")
    kt.add_argument("--widths", type=lambda v: tuple(int(w) for w in v.split(",")),
                    help="encoder widths per stage, comma-separated; each stage after the first "
                         "halves the size (16,32,64,96,128: stride 16; 16,32,64,96: stride 8)")
    kt.add_argument("--chroma-channels", type=int, choices=(0, 2),
                    help="2: add cell-averaged opponent-colour channels and encode luma only (0)")
    kt.add_argument("--seed", type=int)
    kt.add_argument("-q", "--quiet", action="store_true")
    kt.set_defaults(func=training.codec_train)


def _add_set(p: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE`: one checked-in config serves its variants (recipes use it)."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key: dotted.key=JSON value (repeatable)")
