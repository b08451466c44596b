"""The page's generation options as a `duet generate` command line.

The page does not map its widgets to pipeline arguments itself: `Settings.argv()` writes the
command line that the CLI would be given, the flags `duet generate` defines read it, and
their `generate_kwargs` turn it into the pipeline call (all three in
`duet.generate_options`, which the CLI uses too). So a clip made in the page is the clip
that `duet generate` makes from the command line shown beside it in the gallery.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, fields
from typing import NoReturn

from duet.errors import InputError
from duet.generate_options import add_generate_options


@dataclass(frozen=True)
class Settings:
    """Every option of `duet generate` that changes the clip. Text fields hold the flag's
    value as typed on a command line (the CLI's parser checks it); "" or None means the model's
    default, exactly as leaving the flag out does; the pair options take "S" or "V,A"."""

    prompt: str
    seed: int = 0
    steps: str = ""
    duration: str = ""  # seconds
    height: str = ""
    width: str = ""
    solver: str | None = None  # "unipc" | "euler"
    shift: str = ""  # σ shift "S" or "V,A"
    video_guidance: str = ""  # CFG scale as typed; "" = the model's
    audio_guidance: str = ""
    video_negative: str | None = None  # None or "": the model's negative prompt
    audio_negative: str | None = None
    slg: bool = True  # skip-layer guidance in the negative pass
    stg_guidance: str = ""  # "S" or "V,A"; "" = off
    stg_blocks: str = ""  # "I,J"
    cross_modal_guidance: str = ""  # "S" or "V,A"; "" = off
    guidance_rescale: float | None = None
    image: str | None = None  # first frame file (image -> audio + video)
    from_video: str | None = None  # video file (video -> audio)
    from_audio: str | None = None  # sound file (audio -> video)
    loras: tuple[str, ...] = ()  # "DIR[:SCALE]" each, merged in order

    def argv(self, model_argv: list[str], output: str) -> list[str]:
        """`duet generate` arguments that write this clip to `output` with the model that
        `model_argv` names. Defaults are left out; the prompt comes last, after "--", so that
        a prompt starting with "-" stays a prompt."""
        options = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "prompt" or value is None or value == "" or value == f.default:
                continue
            if f.name == "slg":
                options.append("--no-slg")
            elif f.name == "loras":
                options += [f"--lora={spec}" for spec in value]
            else:  # `--flag=value`: a value that starts with "-" stays a value
                options.append(f"--{f.name.replace('_', '-')}={_text(value)}")
        return ["generate", *options, *model_argv, "-o", output, "--", self.prompt]

    def command_line(self, model_argv: list[str], output: str = "clip.mp4") -> str:
        """The shell command that makes this clip."""
        return shlex.join(["duet", *self.argv(model_argv, output)])

    def parse(self, model_argv: list[str], output: str) -> argparse.Namespace:
        """The arguments `duet generate` gets for this clip; a bad value is an `InputError`
        with the parser's own one-line message."""
        parser = _RaisingParser(prog="duet generate")
        add_generate_options(parser)
        return parser.parse_args(self.argv(model_argv, output)[1:])  # after "generate"


def _text(value: object) -> str:
    """A number as the shortest text that reads back as the same number (4.0 -> 4)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _RaisingParser(argparse.ArgumentParser):
    """An argument parser that raises instead of printing usage and exiting the server."""

    def error(self, message: str) -> NoReturn:
        raise InputError(message)
