"""`duet doctor`: check every file of an official Ovi weights folder and say, for each, what
is wrong and what to do, without raising and without reading the DiT's tensors.

It sits beside the CLI, above `duet.weights`, the codecs and the text encoder: it loads each
component with that component's own loader, and those loaders read their files through
`duet.weights`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from duet.errors import DuetError
from duet.weights import (AUDIO_VAE_FILE, DIT_FILES, T5_FILE, TOKENIZER_DIR, VAE_FILE,
                          VOCODER_FILE, check_dit)


@dataclass(frozen=True)
class Check:
    """One line of `duet doctor`."""

    component: str
    path: Path
    status: str  # ok | missing | bad
    detail: str


def _check_vae(path: Path) -> str:
    from duet.codecs.wan import load_wan_vae

    _, arch = load_wan_vae(path)
    return f"{arch.z_dim} latent channels, stride {arch.stride}"


def _check_text(path: Path) -> str:
    from duet.text.umt5 import read_checked

    _, dims = read_checked(path)
    return f"umT5 encoder, {dims.num_layers} layers, d_model {dims.d_model}"


def _check_tokenizer(path: Path) -> str:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return f"{type(tok).__name__}, vocabulary {len(tok)}"


def _check_audio_vae(path: Path) -> str:
    from duet.codecs.mmaudio import load_vae

    load_vae(path)
    return "MMAudio 16 kHz mel VAE"


def _check_vocoder(path: Path) -> str:
    from duet.codecs.mmaudio import load_vocoder

    load_vocoder(path)
    return "BigVGAN 16 kHz vocoder"


def doctor(root: str | os.PathLike, presets: tuple[str, ...] = tuple(DIT_FILES)) -> list[Check]:
    """Check every file of an official weights folder. Never raises for a bad file: each
    problem becomes a `Check` whose detail says what is wrong and what to do."""
    root = Path(root)
    if not root.is_dir():
        return [Check("folder", root, "missing", "no such folder: pass the folder the official "
                      "Ovi download wrote (it holds Ovi/, Wan2.2-TI2V-5B/, MMAudio/)")]
    checks: list[tuple[str, Path, Callable[[Path], str]]] = [
        (f"dit {p}", root / "Ovi" / DIT_FILES[p], lambda f, p=p: check_dit(f, p)) for p in presets]
    checks += [("video vae", root / VAE_FILE, _check_vae),
               ("text encoder", root / T5_FILE, _check_text),
               ("tokenizer", root / TOKENIZER_DIR, _check_tokenizer),
               ("audio vae", root / AUDIO_VAE_FILE, _check_audio_vae),
               ("vocoder", root / VOCODER_FILE, _check_vocoder)]
    out = []
    for name, path, check in checks:
        if not path.exists():
            out.append(Check(name, path, "missing", "not found"))
            continue
        try:
            out.append(Check(name, path, "ok", check(path)))
        except DuetError as e:
            out.append(Check(name, path, "bad", str(e)))
        except Exception as e:  # a foreign file can fail anywhere in a third-party loader
            out.append(Check(name, path, "bad", f"{type(e).__name__}: {e}"))
    return out
