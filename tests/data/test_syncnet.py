"""SyncNet: the official architecture, its state-dict format, the MFCC front end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("cv2", reason="SyncNet crops need the test extra: pip install -e '.[test]'")

from duet.data.curate.syncnet import (
    SyncNet,
    SyncNetConfig,
    config_of,
    load_syncnet,
    mfcc,
    offset_confidence,
)
from duet.data.world import make_clip
from duet.errors import CheckpointError

TINY = SyncNetConfig(audio_channels=(4, 6, 8, 6, 6, 8), lip_channels=(4, 6, 6, 6, 6, 8),
                     hidden=8, embed=8)


@pytest.fixture(autouse=True)
def own_rng():
    """Models built here draw from the global generator; later tests get it back as they
    would have found it."""
    with torch.random.fork_rng():
        yield


def _tiny_checkpoint(path, drop_counters: bool = True) -> SyncNet:
    """A tiny model with non-trivial BatchNorm statistics, saved the way the official
    syncnet_v2.model is: torch.save of a state dict (pre-0.4: no num_batches_tracked)."""
    with torch.random.fork_rng():  # leave the global generator as other tests expect it
        torch.manual_seed(0)
        model = SyncNet(TINY)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in model.state_dict().items()
             if not (drop_counters and k.endswith("num_batches_tracked"))}
    torch.save(state, path)
    return model.eval()


def test_official_shapes_give_1024_d_embeddings():
    model = SyncNet().eval()
    assert config_of(model.state_dict()) == SyncNetConfig()
    with torch.no_grad():
        assert model.forward_audio(torch.zeros(1, 1, 13, 20)).shape == (1, 1024)
        assert model.forward_lip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 1024)


def test_tiny_same_format_weights_load_and_match(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    ref = _tiny_checkpoint(path)
    model = load_syncnet(path)
    g = torch.Generator().manual_seed(1)
    aud, lip = torch.randn(2, 1, 13, 20, generator=g), torch.rand(2, 3, 5, 224, 224, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_audio(aud), ref.forward_audio(aud))
        torch.testing.assert_close(model.forward_lip(lip * 255), ref.forward_lip(lip * 255))


def test_offset_search_runs_on_a_talk_clip(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    _tiny_checkpoint(path)
    clip = make_clip(5, kind="talk")
    frames = clip.video[::24 // 12][:20]  # any frame count works; keep it small
    offset, conf = offset_confidence(load_syncnet(path), frames, clip.audio[: 20 * 640])
    assert abs(offset) <= 600 and np.isfinite(conf) and conf >= 0


def test_wrong_files_fail_with_one_clear_line(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_syncnet(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read SyncNet weights"):
        load_syncnet(tmp_path / "junk.model")
    state = SyncNet(TINY).state_dict()
    del state["netfclip.3.bias"]
    torch.save(state, tmp_path / "partial.model")
    with pytest.raises(CheckpointError, match="missing \\['netfclip.3.bias'\\]"):
        load_syncnet(tmp_path / "partial.model")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.model")
    with pytest.raises(CheckpointError, match="not a SyncNet state dict"):
        load_syncnet(tmp_path / "other.model")


def test_mfcc_matches_the_reference_front_end():
    """SyncNet was trained on python_speech_features' MFCCs (its defaults at 16 kHz)."""
    reference = pytest.importorskip("python_speech_features", reason="reference MFCCs are in "
                                    "the test extra: pip install -e '.[test]'")
    audio = make_clip(5, kind="talk").audio.astype(np.float64)
    ours = mfcc(audio)
    assert ours.shape == (403, 13)  # 1 + ceil((64667 - 400) / 160) steps of 10 ms
    np.testing.assert_allclose(ours, reference.mfcc(audio, 16000), atol=1e-4)
