"""Regional torch.compile of the blocks: same outputs as eager, and eager when it fails."""

import logging

import torch

from duet.model import ModalityInput, TwinModel
from duet.model.compile import CompiledOrEager
from duet.presets import get_preset


def _model_and_inputs():
    torch.manual_seed(0)
    model = TwinModel.from_config(get_preset("tiny").model).eval()
    g = torch.Generator().manual_seed(1)
    cfg = model.cfg
    t = torch.full((2,), 700.0)
    ctx = torch.randn(2, 16, cfg.video.text_dim, generator=g)
    video = ModalityInput(torch.randn(2, cfg.video.in_dim, 3, 8, 8, generator=g), t, ctx)
    audio = ModalityInput(torch.randn(2, 15, cfg.audio.in_dim, generator=g), t, ctx)
    return model, video, audio


def test_residual_stream_is_contiguous():
    """The stems hand the blocks row-major tokens (a channels-first stream made every
    LayerNorm and Linear of the CPU forward copy it)."""
    model, video, audio = _model_and_inputs()
    with torch.no_grad():
        assert model.video_model.prepare(video).x.is_contiguous()
        assert model.audio_model.prepare(audio).x.is_contiguous()


def test_compiled_blocks_match_eager():
    model, video, audio = _model_and_inputs()
    with torch.no_grad():
        want = model(video, audio)
        model.compile_blocks()
        assert all(isinstance(b.self_attention, CompiledOrEager)
                   for b in [*model.video_model.blocks, *model.audio_model.blocks])
        got = model(video, audio, skip_blocks=(1,), skip_items=torch.tensor([False, True]))
        got_plain = model(video, audio)
    for g, w in zip(got_plain, want):
        assert ((g - w).norm() / w.norm()).item() < 1e-5
    assert not torch.allclose(got[0][1], want[0][1])  # item 1 skipped block 1: a real change


def test_failed_compilation_warns_once_and_runs_eagerly(monkeypatch, caplog):
    calls = []

    def broken_compile(fn, **options):
        def run(*args, **kwargs):
            calls.append(1)
            raise RuntimeError("inductor: no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model, video, audio = _model_and_inputs()
    with torch.no_grad():
        want = model(video, audio)
        model.compile_blocks()
        with caplog.at_level(logging.WARNING, logger="duet.model.compile"):
            first = model(video, audio)
            second = model(video, audio)
    assert all(torch.equal(a, b) for a, b in zip(first, want))
    assert all(torch.equal(a, b) for a, b in zip(second, want))
    assert len(calls) == 1  # one failed try switches every block to eager, for good
    assert caplog.text.count("torch.compile failed") == 1
    assert "(RuntimeError: inductor: no C++ compiler found); running the model eagerly" in caplog.text
