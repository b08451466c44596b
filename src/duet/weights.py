"""The official Ovi weights folder: where each file lives, and what `duet doctor` checks.

The official download puts every component under one folder:

    DIR/Ovi/model.safetensors                         DiT, 720x720 5 s  (ovi-720x720-5s)
    DIR/Ovi/model_960x960.safetensors                 DiT, 960x960 5 s  (ovi-960x960-5s)
    DIR/Ovi/model_960x960_10s.safetensors             DiT, 960x960 10 s (ovi-960x960-10s)
    DIR/Wan2.2-TI2V-5B/Wan2.2_VAE.pth                 video VAE
    DIR/Wan2.2-TI2V-5B/models_t5_umt5-xxl-enc-bf16.pth  text encoder
    DIR/Wan2.2-TI2V-5B/google/umt5-xxl/               its tokenizer
    DIR/MMAudio/ext_weights/v1-16.pth                 audio VAE
    DIR/MMAudio/ext_weights/best_netG.pt              BigVGAN vocoder

Only the DiT file differs between the three presets. The DiT's keys are Duet's own
(`duet convert` needs no key map), so it is checked from its safetensors header alone: the
doctor never reads 23 GB to tell a user that a file is truncated. The header's shapes also
give a DiT's model config (`dit_preset`), so `duet convert` takes a checkpoint of any size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duet.errors import CheckpointError, ConfigError, DuetError

if TYPE_CHECKING:
    from duet.config import Modality, Preset, TowerConfig, TwinConfig

DIT_FILES: dict[str, str] = {
    "ovi-720x720-5s": "model.safetensors",
    "ovi-960x960-5s": "model_960x960.safetensors",
    "ovi-960x960-10s": "model_960x960_10s.safetensors",
}
WAN_DIR = "Wan2.2-TI2V-5B"
VAE_FILE = f"{WAN_DIR}/Wan2.2_VAE.pth"
T5_FILE = f"{WAN_DIR}/models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIR = f"{WAN_DIR}/google/umt5-xxl"
AUDIO_VAE_FILE = "MMAudio/ext_weights/v1-16.pth"
VOCODER_FILE = "MMAudio/ext_weights/best_netG.pt"


@dataclass(frozen=True)
class OviFiles:
    """Paths of every component of one Ovi preset inside an official weights folder."""

    root: Path
    dit: Path
    vae: Path
    text: Path
    tokenizer: Path
    audio_vae: Path
    vocoder: Path

    @classmethod
    def at(cls, root: str | os.PathLike, preset: str) -> OviFiles:
        """Where the files should be (nothing is checked; see `locate`)."""
        root = Path(root)
        return cls(root, root / "Ovi" / DIT_FILES.get(preset, DIT_FILES["ovi-720x720-5s"]),
                   root / VAE_FILE, root / T5_FILE, root / TOKENIZER_DIR,
                   root / AUDIO_VAE_FILE, root / VOCODER_FILE)

    def items(self) -> list[tuple[str, Path]]:
        return [("dit", self.dit), ("video vae", self.vae), ("text encoder", self.text),
                ("tokenizer", self.tokenizer), ("audio vae", self.audio_vae),
                ("vocoder", self.vocoder)]

    def codecs(self, vae_tiling: bool = False) -> dict[str, dict[str, Any]]:
        """The preset `codecs` table that builds this folder's codecs and text encoder."""
        video: dict[str, Any] = {"name": "wan2.2-vae", "path": str(self.vae)}
        if vae_tiling:
            video["tiled"] = True
        return {"video": video,
                "audio": {"name": "mmaudio-16k", "vae_path": str(self.audio_vae),
                          "vocoder_path": str(self.vocoder)},
                "text": {"name": "umt5-xxl", "path": str(self.text.parent)}}  # .pth + google/umt5-xxl


def locate(root: str | os.PathLike, preset: str) -> OviFiles:
    """The files of `preset` under `root`; raises CheckpointError listing every missing one."""
    root = Path(root)
    if not root.is_dir():
        raise CheckpointError(f"weights folder {str(root)!r} does not exist; pass the folder the "
                              "official Ovi download wrote (it holds Ovi/, Wan2.2-TI2V-5B/, MMAudio/)")
    files = OviFiles.at(root, preset)
    missing = [f"{name}: {path.relative_to(root)}" for name, path in files.items()
               if not path.exists()]
    if missing:
        raise CheckpointError(
            f"weights folder {str(root)!r} lacks {len(missing)} file(s) that {preset} needs:\n  "
            + "\n  ".join(missing) + "\n`duet doctor --weights DIR` lists what is present")
    return files


def safetensors_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{key: (dtype, shape)} from a safetensors header, checking that the file holds every
    byte the header promises (a download cut short fails here, naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DiT checkpoint not found: {path} is not a file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a safetensors file ({e}); download it again") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path} is truncated: the header promises {8 + n + end:,} bytes, "
                              f"the file has {size:,}; download it again")
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items() if k != "__metadata__"}


def check_dit(path: str | os.PathLike, preset: str | Preset) -> str:
    """Check an Ovi DiT file's keys and shapes against `preset` from its header alone."""
    from duet.model import TwinModel

    p = ovi_preset(preset)
    header = safetensors_header(path)
    want = {k: tuple(v.shape) for k, v in
            TwinModel.from_config(p.model, device="meta").state_dict().items()}
    missing = sorted(set(want) - set(header))
    unexpected = sorted(set(header) - set(want))
    shapes = [f"{k} {header[k][1]} (want {want[k]})" for k in sorted(set(want) & set(header))
              if header[k][1] != want[k]]
    if missing or unexpected or shapes:
        problems = [f"{len(v)} {t} (e.g. {', '.join(v[:3])})" for t, v in
                    (("missing keys", missing), ("unexpected keys", unexpected),
                     ("shape mismatches", shapes)) if v]
        raise CheckpointError(f"{path} is not an {p.name} DiT: " + "; ".join(problems))
    dtypes = sorted({d for d, _ in header.values()})
    return f"{len(header)} tensors ({', '.join(dtypes)}), shapes match {p.name}"


# ---- a DiT's model config from its header ------------------------------------------------
WAN_HEAD_DIM = 128  # Wan's and Ovi's heads: 3072 / 24; the weights do not record the count
OVI_TEXT_LEN = 512  # text rows Ovi pads its umT5 context to; not in the weights either


def _shape(shapes: dict[str, tuple[int, ...]], key: str, rank: int) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"the checkpoint has no {key}: it is not an Ovi-format DiT "
                              "(video_model.* and audio_model.* towers)")
    if len(shapes[key]) != rank:
        raise CheckpointError(f"{key} has shape {shapes[key]}, not {rank}-D as in an Ovi DiT")
    return shapes[key]


def tower_from_shapes(shapes: dict[str, tuple[int, ...]], modality: Modality,
                      num_heads: int | None = None, text_len: int = OVI_TEXT_LEN,
                      rope_time_scale: float = 1.0) -> TowerConfig:
    """The `modality` tower whose state dict has these shapes. Widths, depth, channels,
    patch and flags are in the shapes (a flag's norm is present or not); the head count,
    text length, eps and RoPE factor are not, so they are arguments (eps keeps Ovi's 1e-6)."""
    from duet.config import TowerConfig

    p = f"{modality}_model."
    dim, freq_dim = _shape(shapes, p + "time_embedding.0.weight", 2)
    text_dim = _shape(shapes, p + "text_embedding.0.weight", 2)[1]
    ffn_dim = _shape(shapes, p + "blocks.0.ffn.0.weight", 2)[0]
    layers = {k.split(".")[2] for k in shapes if k.startswith(p + "blocks.")}
    head_out = _shape(shapes, p + "head.head.weight", 2)[0]
    if modality == "video":
        _, in_dim, *patch = _shape(shapes, p + "patch_embedding.weight", 5)
        shaped: dict[str, Any] = {"patch_size": tuple(patch), "out_dim": head_out // math.prod(patch)}
    else:
        _, in_dim, kernel = _shape(shapes, p + "patch_embedding.0.weight", 3)
        shaped = {"patch_size": (1,), "out_dim": head_out, "audio_stem_kernel": kernel,
                  "rope_time_scale": rope_time_scale}
    if num_heads is None:
        if dim % WAN_HEAD_DIM:
            raise ConfigError(f"the weights do not record the head count and width {dim} is not "
                              f"a multiple of Wan's {WAN_HEAD_DIM}-wide heads: pass num_heads "
                              "(--num-heads)")
        num_heads = dim // WAN_HEAD_DIM
    block = p + "blocks.0."
    return TowerConfig(
        modality, dim=dim, ffn_dim=ffn_dim, freq_dim=freq_dim, num_heads=num_heads,
        num_layers=len(layers), in_dim=in_dim, text_len=text_len, text_dim=text_dim,
        qk_norm=block + "self_attn.norm_q.weight" in shapes,
        cross_attn_norm=block + "norm3.weight" in shapes,
        cross_modal=block + "cross_attn.k_fusion.weight" in shapes, **shaped)


def twin_from_header(path: str | os.PathLike, num_heads: int | None = None,
                     text_len: int = OVI_TEXT_LEN) -> TwinConfig:
    """Both towers of an Ovi-format DiT file, read from its safetensors header alone; the
    audio RoPE factor is Ovi's (0.19676: 24 fps video, 31.25 Hz audio latents)."""
    from duet.config import TwinConfig, get_preset

    shapes = {k: shape for k, (_, shape) in safetensors_header(path).items()}
    scale = get_preset("ovi-720x720-5s").model.audio.rope_time_scale
    return TwinConfig(tower_from_shapes(shapes, "video", num_heads, text_len),
                      tower_from_shapes(shapes, "audio", num_heads, text_len, scale))


def dit_preset(path: str | os.PathLike, preset: str | None = None, num_heads: int | None = None,
               text_len: int | None = None) -> Preset:
    """The preset of an Ovi-format DiT file, checked against its header. With `preset`, that
    preset; without, the model read from the shapes, under the name of the preset with that
    model if there is one (the 720x720 one for the real size), else "custom" with Ovi's
    720x720 5 s media, sampler and codecs."""
    from duet.config import PRESETS, get_preset

    if preset is not None:
        if num_heads is not None or text_len is not None:
            raise ConfigError(f"preset {preset!r} fixes the head count and text length: pass "
                              "either a preset or num_heads/text_len for a model read from the file")
        p = get_preset(preset)
    else:
        model = twin_from_header(path, num_heads, OVI_TEXT_LEN if text_len is None else text_len)
        p = next((q for q in PRESETS.values() if q.model == model),
                 dataclasses.replace(get_preset("ovi-720x720-5s"), name="custom", model=model))
    check_dit(path, p)
    return p


def convert_dit(path: str | os.PathLike, preset: Preset, out: str | os.PathLike,
                dtype: str | None = None) -> Path:
    """A bundle (config.json + model.safetensors) from an Ovi-format DiT file: the keys are
    Duet's own, so the tensors are stored as they are (optionally cast)."""
    from duet.checkpoints import BUNDLE_WEIGHTS, load_weights, save_weights, write_config
    from duet.pipeline import resolve_device_dtype

    state = load_weights(path)
    if dtype is not None:
        cast = resolve_device_dtype("cpu", dtype)[1]
        state = {k: v.to(cast) for k, v in state.items()}
    out = Path(out)
    save_weights(state, out / BUNDLE_WEIGHTS)
    write_config(out, preset, {"random_init": False, "note": f"converted from {path}"})
    return out


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


# ---- self-contained bundles ------------------------------------------------------------
PATH_OPTIONS = ("path", "vae_path", "vocoder_path", "weights")  # codec options naming files


def ovi_preset(preset: str | Preset) -> Preset:
    """An Ovi preset by name (or a Preset object, e.g. a test's tiny variant), checked."""
    from duet.config import Preset, get_preset

    if isinstance(preset, Preset):
        return preset
    if preset not in DIT_FILES:
        raise ConfigError(f"an official weights folder holds the Ovi presets {sorted(DIT_FILES)}, "
                          f"not {preset!r}: pass --model with one of them")
    return get_preset(preset)


def resolve_codec_paths(preset: Preset, directory: str | os.PathLike) -> Preset:
    """A bundle's codec file options are relative to the bundle: make them absolute."""
    base = Path(directory)
    codecs = {kind: {k: str(base / v) if k in PATH_OPTIONS and isinstance(v, str)
                     and not Path(v).is_absolute() else v for k, v in opts.items()}
              for kind, opts in preset.codecs.items()}
    return dataclasses.replace(preset, codecs=codecs)


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard links cost no disk space on the same file system; elsewhere copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file, dirs_exist_ok=True)
    else:
        _link_file(src, dst)


def _link_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_bundle(root: str | os.PathLike, preset: str | Preset, out: str | os.PathLike,
                 dtype: str | None = None) -> Path:
    """A self-contained Duet bundle from an official weights folder: `config.json` (whose
    codec paths are relative to the bundle), `model.safetensors` (the DiT, optionally cast)
    and the components under `video_vae/`, `audio_vae/`, `text_encoder/`, hard-linked where
    possible. `DuetPipeline.from_pretrained(out)` then needs nothing else."""
    from duet.checkpoints import BUNDLE_WEIGHTS, load_weights, save_weights, write_config
    from duet.pipeline import resolve_device_dtype

    p = ovi_preset(preset)
    files = locate(root, p.name)
    out = Path(out)
    check_dit(files.dit, p)
    if dtype is None:  # the official file already is a bundle's weights file: link, don't rewrite 23 GB
        _link_or_copy(files.dit, out / BUNDLE_WEIGHTS)
    else:
        cast = resolve_device_dtype("cpu", dtype)[1]
        save_weights({k: v.to(cast) for k, v in load_weights(files.dit).items()}, out / BUNDLE_WEIGHTS)
    parts = {"video_vae/" + files.vae.name: files.vae,
             "audio_vae/" + files.audio_vae.name: files.audio_vae,
             "audio_vae/" + files.vocoder.name: files.vocoder,
             "text_encoder/" + files.text.name: files.text,
             "text_encoder/google/umt5-xxl": files.tokenizer}
    for rel, src in parts.items():
        _link_or_copy(src, out / rel)
    codecs = {"video": {"name": "wan2.2-vae", "path": f"video_vae/{files.vae.name}"},
              "audio": {"name": "mmaudio-16k", "vae_path": f"audio_vae/{files.audio_vae.name}",
                        "vocoder_path": f"audio_vae/{files.vocoder.name}"},
              "text": {"name": "umt5-xxl", "path": "text_encoder"}}
    write_config(out, dataclasses.replace(p, codecs=codecs),
                 {"random_init": False, "note": f"converted from {files.root}"})
    return out
