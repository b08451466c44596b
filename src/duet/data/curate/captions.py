"""Captions for curated clips, in Ovi's prompt format.

A caption comes from, in order: the config's `caption_command` (a shell command whose
stdout is the caption; ``{path}``, ``{start}`` and ``{end}`` are replaced by the input
file and the clip's span in seconds), its `caption_callable` (``module:function`` called
as ``f(path, start, end)``), or a sidecar ``NAME.txt`` next to the input. The hook may
return the whole prompt as a string, or a dict with ``visual``, ``speech`` and ``audio``
parts which is assembled into ``visual <S>speech<E>. <AUDCAP>audio<ENDAUDCAP>``. Either
way the prompt is parsed (malformed tags are an error for that clip, not a silent bad
caption) and rendered in the preset's prompt format (`<AUDCAP>` or `Audio:`).
"""

from __future__ import annotations

import functools
import importlib
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duet.data.curate.config import CurateConfig
from duet.errors import ConfigError, PromptError
from duet.text.prompt import (
    AUDCAP_CLOSE,
    AUDCAP_OPEN,
    SPEECH_CLOSE,
    SPEECH_OPEN,
    Prompt,
    parse_prompt,
)

_TIMEOUT_S = 120  # a caption command that takes longer is treated as failed


class CaptionError(Exception):
    """The caption hook failed or returned something that is not a prompt."""


def ovi_prompt(visual: str = "", speech: str = "", audio: str = "") -> str:
    """Assemble Ovi's tagged prompt from its parts (any may be empty)."""
    parts = [visual.strip()]
    if speech.strip():
        parts.append(f"{SPEECH_OPEN}{speech.strip()}{SPEECH_CLOSE}.")
    if audio.strip():
        parts.append(f"{AUDCAP_OPEN}{audio.strip()}{AUDCAP_CLOSE}")
    return " ".join(p for p in parts if p)


@functools.cache
def _callable(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"caption_callable {spec!r} cannot be loaded: {e}") from None


def _raw_caption(path: Path, start: float, end: float, cfg: CurateConfig) -> Any:
    if cfg.caption_command:
        cmd = cfg.caption_command.format(path=shlex.quote(str(path)), start=f"{start:.3f}",
                                         end=f"{end:.3f}")
        try:
            done = subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise CaptionError(f"caption command took over {_TIMEOUT_S} s") from None
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no stderr"])[-1]
            raise CaptionError(f"caption command exited {done.returncode}: {last}")
        return done.stdout
    if cfg.caption_callable:
        return _callable(cfg.caption_callable)(str(path), start, end)
    sidecar = path.with_suffix(".txt")
    return sidecar.read_text() if sidecar.is_file() else ""


def caption_for(path: Path, start: float, end: float, cfg: CurateConfig,
                prompt_format: str) -> tuple[str, Prompt | None]:
    """(prompt in the preset's format, its parse) for one clip; ("", None) when uncaptioned."""
    raw = _raw_caption(path, start, end, cfg)
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"visual", "speech", "audio"})
        if unknown:
            raise CaptionError(f"caption hook returned unknown part {unknown[0]!r}; "
                               "use visual, speech, audio")
        raw = ovi_prompt(**{k: str(v) for k, v in raw.items()})
    if not isinstance(raw, str):
        raise CaptionError(f"caption hook returned {type(raw).__name__}, not a string or dict")
    text = " ".join(raw.split())
    if not text:
        return "", None
    try:
        prompt = parse_prompt(text)
    except PromptError as e:
        raise CaptionError(f"caption is not a valid Ovi prompt: {e}") from None
    return prompt.to_format(prompt_format), prompt
