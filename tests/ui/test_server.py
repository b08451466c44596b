"""`duet ui` driven through its API with gradio_client, against a server on a free port."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import fields

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from PIL import Image
from ui_helpers import P

from duet.cli import main
from duet.media import read_mp4, write_clip
from duet.pipeline import Clip
from duet.ui.settings import Settings


def inputs(**changed):
    """The /generate inputs: every Settings field, as the page's widgets send them."""
    widget = {"solver": "", "video_negative": "", "audio_negative": "", "loras": "",
              "guidance_rescale": 0}  # the widgets' empty values where Settings says None or ()
    values = {f.name: widget.get(f.name, f.default) for f in fields(Settings) if f.name != "prompt"}
    values.update(prompt=P, steps="2", duration="0.5")
    values.update(changed)
    return [values[f.name] for f in fields(Settings)]


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("got")))


def test_generate_gives_a_clip_with_sound_its_command_and_a_gallery(client):
    status, video, command, attention, gallery = client.predict(*inputs(seed=3), api_name="/generate")
    assert status.startswith("wrote clip-") and attention is not None
    assert command == f"duet generate --seed=3 --steps=2 --duration=0.5 -o clip.mp4 -- '{P}'"
    clip = read_mp4(video)
    assert clip.frames.shape[0] == 13 and clip.audio.size > 0
    assert [item["caption"] for item in gallery] == [command]
    _, _, second, _, gallery = client.predict(*inputs(seed=4), api_name="/generate")
    assert [item["caption"] for item in gallery] == [second, command]  # newest first


def test_the_page_makes_the_clip_its_command_line_makes(client, tmp_path, monkeypatch):
    """Through the page's widgets and back through the shown command line: the same clip,
    compared as generated (before the H.264 encoder, see test_runner.py)."""
    saved = []
    save = Clip.save
    monkeypatch.setattr(Clip, "save", lambda clip, path: saved.append(clip) or save(clip, path))
    _, _, command, _, _ = client.predict(*inputs(
        seed=2, solver="euler", shift="3,5", video_guidance="2.5", slg=False, stg_guidance="0.5",
        cross_modal_guidance="1.5", guidance_rescale=0.3), api_name="/generate")
    argv = shlex.split(command)[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "cli.mp4")
    assert main([argv[0], "-q", *argv[1:]]) == 0
    page, cli = saved
    assert torch.equal(page.video, cli.video) and torch.equal(page.audio, cli.audio)


def test_a_given_picture_video_or_sound_reaches_the_pipeline(client, tmp_path):
    frames = np.zeros((13, 64, 64, 3), np.uint8)
    frames[:, :, 32:] = 255  # right half white
    given = write_clip(tmp_path / "given.mp4", frames, np.zeros(8000, np.float32), 24, 16000)
    Image.fromarray(frames[0]).save(tmp_path / "first.png")
    sound = write_clip(tmp_path / "given.wav", frames, np.zeros(8000, np.float32), 24, 16000)
    for field, path in (("image", tmp_path / "first.png"), ("from_video", given),
                        ("from_audio", sound)):
        status, video, command, _, _ = client.predict(*inputs(**{field: handle_file(str(path))},
                                                             duration=""),
                                                      api_name="/generate")
        assert status.startswith("wrote"), status
        assert f"--{field.replace('_', '-')}=" in command
        clip = read_mp4(video)
        if field == "from_video":  # the given picture is the clip's picture
            assert clip.frames[:, :, :24].max() < 40 and clip.frames[:, :, 40:].min() > 215


@pytest.mark.parametrize("changed, line", [
    ({"prompt": "<S>never closed"}, ("duet: error: speech '<S>never closed' opened at position "
                                     "0 is never closed; add <E> after the spoken words")),
    ({"stg_guidance": "x"}, ("duet: error: argument --stg-guidance: expected one number or two "
                             "as video,audio, got 'x'")),
    ({"loras": "/no/such/adapter"}, "duet: error: "),
])
def test_errors_are_the_clis_one_line_messages(client, changed, line):
    status, video, *_ = client.predict(*inputs(**changed), api_name="/generate")
    assert status.startswith(line) and "\n" not in status and "Traceback" not in status
    assert video is None


def test_a_bug_is_one_line_in_the_page_too(server, client, monkeypatch):
    from duet.ui.runner import Runner

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(Runner, "generate", boom)
    status, *_ = client.predict(*inputs(), api_name="/generate")
    assert status == "duet: internal error: RuntimeError: boom"


def test_the_prompt_check_shows_tag_errors_as_you_type(client):
    problem = client.predict("a ball <AUDCAP>thud", api_name="/check_prompt")
    assert problem.startswith("⚠ ") and "&lt;AUDCAP&gt;" in problem  # shown as text, not HTML
    assert client.predict(P, api_name="/check_prompt") == ""


def test_progress_then_cancel_and_a_queue_of_one(server):
    first, second = (Client(server.local_url, verbose=False, download_files=False) for _ in "12")
    job = first.submit(*inputs(steps="200"), api_name="/generate")
    deadline = time.monotonic() + 120
    while not (job.status().progress_data or time.monotonic() > deadline):
        time.sleep(0.2)
    progress = job.status().progress_data[0]
    assert progress.unit == "steps" and progress.length == 200 and progress.desc == "denoising"
    waiting = second.submit(*inputs(steps="1"), api_name="/generate")
    time.sleep(2)
    assert waiting.status().code == Status.IN_QUEUE  # one at a time
    first.predict(api_name="/cancel")
    status = job.result(timeout=60)[0]
    assert status.startswith("duet: cancelled after step ") and status.endswith(" of 200")
    assert waiting.result(timeout=120)[0].startswith("wrote")


def test_duet_ui_binds_to_localhost_and_help_does_not_import_gradio():
    from duet.cli import build_parser

    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)
    code = "import sys, duet.cli; duet.cli.build_parser(); print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_gradio_duet_ui_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    assert main(["ui"]) == 2
    assert capsys.readouterr().err == "duet: error: duet ui needs Gradio: pip install 'duet[ui]'\n"
