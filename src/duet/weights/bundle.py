"""Duet model bundles: a directory with `config.json` (the `Preset`: towers, media rates,
sampler defaults, codec names) and `model.safetensors` (the `TwinModel` state dict with the
official `video_model.*` / `audio_model.*` key names), written atomically, and the bundles
made from the official Ovi download (`convert_dit`, `write_bundle`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from duet.atomic import atomic_write
from duet.config import Preset
from duet.config_files import apply_overrides
from duet.errors import CheckpointError, ConfigError
from duet.presets import get_preset
from duet.weights.files import load_weights, save_weights
from duet.weights.official import check_dit, locate, official_codecs, ovi_preset

BUNDLE_CONFIG = "config.json"
BUNDLE_WEIGHTS = "model.safetensors"
FORMAT = "duet-bundle"


def write_config(directory: Path, preset: Preset, extra: dict[str, Any]) -> None:
    """Write a bundle's config.json atomically: the preset and `extra` (e.g. `random_init`)."""
    payload = {"format": FORMAT, **preset.to_dict(), **extra}
    atomic_write(directory / BUNDLE_CONFIG, lambda tmp: tmp.write_text(json.dumps(payload, indent=2)),
                 CheckpointError)


def read_config(directory: str | os.PathLike) -> tuple[Preset, dict[str, Any]]:
    """Read a bundle's config.json: (preset, extra fields such as `random_init`)."""
    path = Path(directory) / BUNDLE_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a Duet model bundle: {BUNDLE_CONFIG} is missing. "
                              "Create one with `duet convert` or DuetPipeline.save_pretrained")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not the object "
                              f"({{...}}) of a {FORMAT} config")
    if data.pop("format", None) != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} config")
    extra = {k: data.pop(k) for k in ("random_init", "note") if k in data}
    try:
        return Preset.from_dict(data), extra
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None


PATH_OPTIONS = ("path", "vae_path", "vocoder_path", "weights")  # codec options naming files


def preset_or_bundle(name: str | os.PathLike) -> Preset:
    """A run's base preset: a preset by name, or a bundle directory's own config (its
    towers, media, sampler and codecs, codec files made absolute), so that fine-tuning or RL
    of a trained bundle takes the shape it was trained with instead of restating it."""
    path = Path(name)
    if path.is_dir():  # read_config names a folder that is not a bundle
        return resolve_codec_paths(read_config(path)[0], path)
    try:
        return get_preset(str(name))
    except ConfigError as e:
        raise ConfigError(f"{e}, or give a bundle directory (one with {BUNDLE_CONFIG})") from None


def codec_files(codecs: Mapping[str, Any]) -> Iterator[tuple[str, str, Path]]:
    """(kind, option, path) for each codec option that names a file (`PATH_OPTIONS`); the
    one place that knows which options those are."""
    for kind, spec in codecs.items():
        if isinstance(spec, Mapping):
            for key, value in spec.items():
                if key in PATH_OPTIONS and isinstance(value, str):
                    yield kind, key, Path(value)


def resolve_codec_paths(preset: Preset, directory: str | os.PathLike) -> Preset:
    """A bundle's codec file options are relative to the bundle: make them absolute."""
    codecs = {kind: dict(spec) for kind, spec in preset.codecs.items()}
    for kind, key, path in codec_files(preset.codecs):
        if not path.is_absolute():
            codecs[kind][key] = str(Path(directory) / path)
    return dataclasses.replace(preset, codecs=codecs)


def bundle_codec_files(preset: Preset, directory: str | os.PathLike,
                       options: Mapping[str, Mapping[str, Any]]) -> Preset:
    """`preset` with the codec files that `options` name (a run's `codecs` overrides)
    linked or copied into the bundle at `directory`, under `<kind>_codec/`, and named
    relative to it (what `resolve_codec_paths` reads back), so the bundle is self-contained."""
    base = Path(directory)
    codecs = {kind: dict(spec) for kind, spec in preset.codecs.items()}
    for kind, key, src in codec_files(options):
        if not src.exists():
            raise CheckpointError(f"codecs.{kind}.{key} = {str(src)!r} does not exist; the "
                                  "bundle cannot carry it. Point it at the trained file")
        rel = f"{kind}_codec/{src.name}"
        if not (base / rel).exists() or not (base / rel).samefile(src):
            _link_or_copy(src, base / rel)
        codecs[kind][key] = rel
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
    from duet.devices import resolve_device_dtype

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
    codecs = official_codecs(f"video_vae/{files.vae.name}", f"audio_vae/{files.audio_vae.name}",
                             f"audio_vae/{files.vocoder.name}", "text_encoder")
    write_config(out, dataclasses.replace(p, codecs=codecs),
                 {"random_init": False, "note": f"converted from {files.root}"})
    return out


def _cast(state: dict[str, Any], dtype: str | None) -> dict[str, Any]:
    """`state` with its floating-point tensors stored as `dtype` (None: as they are)."""
    from duet.devices import resolve_device_dtype

    if dtype is None:
        return state
    cast = resolve_device_dtype("cpu", dtype)[1]
    return {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}


def convert_dit(path: str | os.PathLike, preset: Preset, out: str | os.PathLike,
                dtype: str | None = None) -> Path:
    """A bundle (config.json + model.safetensors) from an Ovi-format DiT file: the keys are
    Duet's own, so the tensors are stored as they are (optionally cast)."""
    state = _cast(load_weights(path), dtype)
    out = Path(out)
    save_weights(state, out / BUNDLE_WEIGHTS)
    write_config(out, preset, {"random_init": False, "note": f"converted from {path}"})
    return out


def convert_bundle(src: str | os.PathLike, out: str | os.PathLike, dtype: str | None = None,
                   overrides: Sequence[str] = (),
                   loras: Sequence[tuple[str | os.PathLike, float]] = ()) -> Path:
    """A copy of the bundle at `src` with its weights cast to `dtype` and its codec files
    carried along: how a trained bundle (fp32, from `duet train`) becomes the bf16 bundle
    the package ships, with its own shape and codecs. `overrides` (`duet convert --set`)
    set the sampler defaults the copy is shipped with (`sampler.video_guidance=1.0`: a
    training run records the preset's, not the ones measured best on the trained model) and
    its `note`; the shape, media and codecs are the weights' own and cannot be changed here.
    `loras` ((adapter directory, scale) pairs: `duet rl` or `duet train` with lora) are
    merged in order before the cast: a bundle that trains on (a stage after an RL run) or
    ships with the adapter baked in."""
    out = Path(out)
    if out.exists() and out.samefile(src):
        raise ConfigError(f"-o {out} is the bundle being converted; write to another directory")
    bad = [o for o in overrides if not o.startswith(("sampler.", "note="))]
    if bad:
        raise ConfigError(f"--set {bad[0]!r}: a converted bundle takes only sampler.KEY=VALUE "
                          "(its sampler defaults) and note=TEXT; its shape, media and codecs "
                          "are those its weights were trained with")
    bad_scale = [scale for _, scale in loras if not math.isfinite(scale)]
    if bad_scale:
        raise ConfigError(f"--lora scale must be a finite number, got {bad_scale[0]}")
    preset, extra = read_config(src)
    state = load_weights(Path(src) / BUNDLE_WEIGHTS)
    note = extra.get("note", f"converted from {src}")
    if loras:
        from duet.devices import resolve_device_dtype
        from duet.lora import load_adapter, merge_adapter_state

        target = resolve_device_dtype("cpu", dtype)[1] if dtype else None
        for path, scale in loras:
            state = merge_adapter_state(state, load_adapter(path), scale, str(path), target)
            note += f"; merged LoRA {path}" + (f" at scale {scale:g}" if scale != 1.0 else "")
    note += f"; stored as {dtype}" if dtype else ""
    fields = apply_overrides({**preset.to_dict(), "note": note}, overrides)
    note = fields.pop("note")
    preset = Preset.from_dict(fields)
    state = _cast(state, dtype)
    preset = bundle_codec_files(preset, out, resolve_codec_paths(preset, src).codecs)
    save_weights(state, out / BUNDLE_WEIGHTS)
    write_config(out, preset, {**extra, "note": note})
    return out
