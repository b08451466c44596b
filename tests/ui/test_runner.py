"""The runner: the CLI's clip bit for bit, progress per step, cancel, the attention picture."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from ui_helpers import P

from duet.cli import main
from duet.media import read_mp4
from duet.pipeline import Clip
from duet.ui.runner import Cancelled, Runner
from duet.ui.settings import Settings


def test_a_clip_from_the_runner_is_the_clip_from_the_cli(tmp_path, adapter, monkeypatch):
    """Same seed and settings (guidance terms, σ grid per modality, solver, an adapter) give
    the same frames and samples through the page's runner as through `duet generate`. The
    clips are compared as generated, before the H.264 encoder, whose choices are not a
    property of the clip."""
    saved = []
    save = Clip.save
    monkeypatch.setattr(Clip, "save", lambda clip, path: saved.append(clip) or save(clip, path))
    s = Settings(P, seed=5, steps="3", duration="0.5", solver="euler", shift="3,5",
                 video_guidance="2.5", slg=False, stg_guidance="0.5", cross_modal_guidance="1.5",
                 guidance_rescale=0.3, loras=(f"{adapter}:0.7",))
    runner = Runner(["--dtype=float32"], tmp_path)
    runner.generate(s)
    command = s.argv(["--dtype=float32"], str(tmp_path / "cli.mp4"))  # "generate", ..., "--", P
    assert main([command[0], "-q", *command[1:]]) == 0
    ui, cli = saved
    assert ui.video.shape == cli.video.shape == (13, 64, 64, 3)
    assert torch.equal(ui.video, cli.video) and torch.equal(ui.audio, cli.audio)
    runner.generate(Settings(P, seed=5, steps="3", duration="0.5"))
    assert not torch.equal(saved[2].video, ui.video)  # the options did change the clip
    assert read_mp4(tmp_path / "cli.mp4").frames.shape == (13, 64, 64, 3)


def test_progress_every_step_and_the_attention_picture(tmp_path):
    seen = []
    result = Runner([], tmp_path).generate(Settings(P, steps="3", duration="0.5"),
                                           on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert result.video.is_file() and result.command.startswith("duet generate --steps=3")
    picture = np.asarray(Image.open(result.attention).convert("RGB"))
    assert picture.shape[0] > 300 and picture.shape[1] > 500 and picture.std() > 10


def test_cancel_stops_between_steps_and_writes_nothing(tmp_path):
    flag = threading.Event()
    runner = Runner([], tmp_path)
    with pytest.raises(Cancelled, match="cancelled after step 2 of 6"):
        runner.generate(Settings(P, steps="6", duration="0.5"), cancel=flag,
                        on_step=lambda done, _: done == 2 and flag.set())
    assert not list(tmp_path.glob("*.mp4"))
    assert runner.generate(Settings(P, steps="1", duration="0.5")).video.is_file()  # still usable
