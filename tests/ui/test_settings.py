"""The page's settings are a `duet generate` command line, read by `duet generate`'s own flags."""

from __future__ import annotations

import shlex

import pytest

from duet.cli import build_parser
from duet.cli.generate import generate
from duet.errors import InputError
from duet.ui.settings import Settings


def test_defaults_are_left_out_and_the_prompt_comes_last():
    assert Settings("a ball").argv([], "o.mp4") == ["generate", "-o", "o.mp4", "--", "a ball"]


def test_every_option_reaches_the_cli_as_its_flag():
    s = Settings("-a ball <S>hi<E>", seed=7, steps="3", duration="0.5", height="48", width="80",
                 solver="euler", shift="3,5", video_guidance="2.5", audio_guidance="1",
                 video_negative="", audio_negative="noise", slg=False, stg_guidance="1,2",
                 stg_blocks="1,2", cross_modal_guidance="-2", guidance_rescale=0.5, image="f.png",
                 loras=("a:0.5", "b"))
    args = s.parse(["--model=demo", "--dtype=float32"], "out.mp4")
    assert args.prompt == "-a ball <S>hi<E>" and args.output == "out.mp4"
    assert (args.seed, args.steps, args.duration, args.height, args.width) == (7, 3, 0.5, 48, 80)
    assert (args.solver, args.shift, args.video_guidance, args.audio_guidance) == ("euler", (3.0, 5.0), 2.5, 1.0)
    assert (args.video_negative, args.audio_negative, args.no_slg) == (None, "noise", True)
    assert (args.stg_guidance, args.stg_blocks, args.cross_modal_guidance) == ((1.0, 2.0), (1, 2), -2.0)
    assert (args.guidance_rescale, args.image, args.lora) == (0.5, "f.png", ["a:0.5", "b"])
    assert (args.model, args.dtype) == ("demo", "float32")


def test_the_command_line_shown_parses_to_the_same_arguments():
    s = Settings("it's \"quoted\" <AUDCAP>a bell<ENDAUDCAP>", seed=3, shift="2", slg=False,
                 loras=("dir with space:0.5",))
    shell = shlex.split(s.command_line(["--model=demo"]))
    assert shell[0] == "duet"
    cli = vars(build_parser().parse_args(shell[1:]))
    assert (cli.pop("command"), cli.pop("func")) == ("generate", generate)  # the CLI's dispatch
    assert cli == vars(s.parse(["--model=demo"], "clip.mp4"))


@pytest.mark.parametrize("field, value, needle", [
    ("stg_guidance", "a,b", "argument --stg-guidance: expected one number or two"),
    ("stg_blocks", "1.5", "argument --stg-blocks: expected block indices"),
    ("solver", "heun", "argument --solver: invalid choice: 'heun'"),
    ("video_guidance", "four", "argument --video-guidance: invalid float value: 'four'"),
])
def test_a_bad_value_is_the_parsers_one_line_error(field, value, needle):
    with pytest.raises(InputError, match=needle) as e:
        Settings("a ball", **{field: value}).parse([], "o.mp4")
    assert "\n" not in str(e.value)
