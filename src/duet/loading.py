"""Which weights `DuetPipeline.from_pretrained(model)` means: a bundle directory, a preset's
bundle shipped inside the package, or, for the demo preset alone, random weights.

Apart from the pipeline so that the rule is read in one place (and tests can swap the
shipped bundle) without the generation code around it.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

import torch

from duet.config import Preset
from duet.presets import PRESETS, get_preset
from duet.errors import CheckpointError, ConfigError
from duet.model import TwinModel
from duet.weights import BUNDLE_WEIGHTS, load_into, load_weights, read_config, resolve_codec_paths

log = logging.getLogger(__name__)

RANDOM_INIT_WARNING = (
    "the model has RANDOM weights (no trained weights were found): the clip will be noise. "
    "Pass --model DIR with a trained bundle to generate real content.")


def shipped_bundle(name: str) -> Path | None:
    """A bundle shipped inside the package (duet/assets/<name>), if this install has one."""
    path = Path(str(resources.files("duet"))) / "assets" / name
    return path if (path / BUNDLE_WEIGHTS).is_file() else None


def random_model(preset: Preset, seed: int = 0) -> TwinModel:
    """A reproducibly initialised model (for tests, benchmarks and the untrained fallback)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TwinModel.from_config(preset.model)


def find_model(model: str | os.PathLike) -> tuple[Preset, Path | None, bool]:
    """(preset, weights file or None for random weights, whether the weights are random)
    for a bundle directory or a preset name."""
    path = Path(model)
    if path.is_dir():
        preset, extra = read_config(path)
        random_init = bool(extra.get("random_init", False))
        return resolve_codec_paths(preset, path), path / BUNDLE_WEIGHTS, random_init
    if str(model) not in PRESETS:
        raise ConfigError(f"--model {str(model)!r} is neither a bundle directory nor a preset; "
                          f"presets: {sorted(PRESETS)}")
    preset = get_preset(str(model))
    shipped = shipped_bundle(preset.name)
    if shipped is not None:  # the bundle's own config: it is what its weights were trained as
        return resolve_codec_paths(read_config(shipped)[0], shipped), shipped / BUNDLE_WEIGHTS, False
    if preset.name != "demo":
        raise CheckpointError(
            f"preset {preset.name!r} has no weights in this install; pass a bundle "
            "directory, or --weights with the official Ovi download (see `duet doctor`)")
    return preset, None, True


def load_model(model: str | os.PathLike, dtype: torch.dtype) -> tuple[Preset, TwinModel, bool]:
    """(preset, model, whether its weights are random) for a bundle directory or a preset
    name; random weights are logged as a warning, as the clip will be noise."""
    preset, file, random_init = find_model(model)
    if random_init:
        log.warning(RANDOM_INIT_WARNING)
    net = random_model(preset).to(dtype) if file is None else load_twin(preset, file, dtype)
    return preset, net, random_init


def load_twin(preset: Preset, file: Path, dtype: torch.dtype) -> TwinModel:
    """The preset's model with the weights of `file`, built on `meta` and loaded strictly."""
    net = TwinModel.from_config(preset.model, device="meta")
    load_into(net, load_weights(file), source=str(file), dtype=dtype)
    return net
