"""One generation for the page: the CLI's own path, plus progress, cancel and the attention map.

The runner knows nothing about Gradio. It parses `Settings` with `duet generate`'s flags,
loads the pipeline through `duet.generate_options.load_pipeline` and calls it with its
`generate_kwargs`, as `duet generate` does, so the page and the CLI give the same clip. It
keeps the loaded pipeline while the model and its adapters stay the same; a different
adapter list reloads the model instead of un-merging the old adapters, because subtracting a
merged LoRA in floating point does not give the original weights back bit for bit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duet.generate_options import generate_kwargs, load_pipeline, read_inputs
from duet.ui.settings import Settings

if TYPE_CHECKING:
    import argparse

    from torch import Tensor

    from duet.pipeline import Clip, DuetPipeline

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """The user cancelled; raised from the sampler's callback between two steps."""


@dataclass(frozen=True)
class Result:
    """A finished clip: its MP4, the command line that remakes it, its attention picture."""

    video: Path
    command: str
    attention: Path | None  # PNG; None when no step ran with the fusion on
    seconds: float  # loading (if any) + generation
    random_init: bool  # made by a model with random weights: noise


class Runner:
    """Runs generations one at a time with the model that `model_argv` names (`--model`,
    `--weights`, `--device`, `--dtype` as `duet generate` takes them), writing to `out_dir`."""

    def __init__(self, model_argv: list[str], out_dir: Path) -> None:
        self.model_argv = list(model_argv)
        self.out_dir = Path(out_dir)
        self._lock = threading.Lock()  # one generation (and one model load) at a time
        self._pipe: DuetPipeline | None = None
        self._key: tuple[Any, ...] | None = None
        self._count = 0

    def warm(self) -> None:
        """Load the model without adapters now, so that the first click need not wait."""
        with self._lock:
            self._pipeline(Settings("warm-up").parse(self.model_argv, "warm-up.mp4"))

    def generate(self, settings: Settings, *, on_step: Callable[[int, int], None] | None = None,
                 cancel: threading.Event | None = None) -> Result:
        """Make one clip. `on_step(done, total)` after each denoising step; setting `cancel`
        stops the run at the next step with `Cancelled`. User mistakes raise `DuetError`."""
        with self._lock:
            self._count += 1
            name = f"clip-{self._count:03d}"
            video_path = self.out_dir / f"{name}.mp4"
            args = settings.parse(self.model_argv, str(video_path))
            t0 = time.perf_counter()
            inputs = read_inputs(args)
            pipe = self._pipeline(args)
            kwargs = generate_kwargs(args, pipe, inputs)
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled before the first step")
            total = pipe.preset.sampler.steps if args.steps is None else args.steps
            clip, attention = _run(pipe, args.prompt, kwargs, total, on_step, cancel)
            clip.save(video_path)
            picture = None
            if attention is not None:
                from duet.ui.attention_map import render

                picture = render(attention, clip.duration, self.out_dir / f"{name}-attention.png")
            seconds = time.perf_counter() - t0
            log.info("wrote %s in %.1f s", video_path, seconds)
            return Result(video_path, settings.command_line(self.model_argv), picture, seconds,
                          pipe.random_init)

    def _pipeline(self, args: argparse.Namespace) -> DuetPipeline:
        key = (args.model, args.weights, args.device, args.dtype, tuple(args.lora))
        if key != self._key:
            self._pipe = self._key = None  # let the old weights go before the new ones load
            self._pipe = load_pipeline(args, args.device)
            self._key = key
        return self._pipe


def _run(pipe: DuetPipeline, prompt: str, kwargs: dict[str, Any], total: int,
         on_step: Callable[[int, int], None] | None,
         cancel: threading.Event | None) -> tuple[Clip, Tensor | None]:
    """The pipeline call with the attention probe on: the clip and the audio -> video map
    [audio latents, video latent frames], averaged over the steps (None if none was seen)."""
    import torch

    from duet.model.probe import AudioToVideoAttention
    from duet.ui.attention_map import frame_attention

    maps = []
    _, ph, pw = pipe.preset.model.video.patch_size

    def step(state: dict[str, Any]) -> None:
        found = probe.take()  # (B, L_audio, L_video); row 0 is the conditional pass
        if found is not None:
            h, w = state["video"].shape[-2:]
            maps.append(frame_attention(found[0], found.shape[-1] // ((h // ph) * (w // pw))))
        done = state["i"] + 1
        if on_step is not None:
            on_step(done, total)
        if cancel is not None and cancel.is_set() and done < total:
            raise Cancelled(f"cancelled after step {done} of {total}")

    with AudioToVideoAttention(pipe.model) as probe:
        clip = pipe(prompt, **kwargs, progress=False, callback=step)
    return clip, torch.stack(maps).mean(0) if maps else None
