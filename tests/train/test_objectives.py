"""Flow matching (Ovi): interpolation, velocity target, timestep samplers, weighted loss."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from duet.errors import ConfigError, InputError
from duet.train import FlowConfig, LatentBatch, flow_matching_loss
from duet.train.objectives import (crop_video, draw, logit_normal_t, motion_weight, noisy_latent,
                                   sample_t, shift_t,
                                   uniform_t, velocity_target)


def _batch(n: int = 4, video: bool = True, audio: bool = True) -> LatentBatch:
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(n, 3, 16, generator=g)
    return LatentBatch(video=torch.randn(n, 4, 2, 4, 4, generator=g) if video else None,
                       audio=torch.randn(n, 8, 6, generator=g) if audio else None,
                       video_context=ctx if video else None, audio_context=ctx if audio else None)


def test_interpolation_and_velocity():
    x0, eps = torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([0.0, 0.3, 1.0])
    xt = noisy_latent(x0, eps, t)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[2], eps[2])
    torch.testing.assert_close(xt[1], 0.7 * x0[1] + 0.3 * eps[1])
    # v = eps - x0 is the time derivative of x_t
    h = 1e-3
    dxdt = (noisy_latent(x0, eps, t + h) - noisy_latent(x0, eps, t)) / h
    torch.testing.assert_close(dxdt, velocity_target(x0, eps), atol=1e-3, rtol=1e-3)


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_samplers():
    u = uniform_t(10_000, _gen())
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    s = sample_t(10_000, _gen(), FlowConfig(sampler="shifted", shift=5.0))
    torch.testing.assert_close(s, 5 * u / (1 + 4 * u))  # σ' = sσ / (1 + (s-1)σ) on the same draws
    assert torch.equal(shift_t(u, 1.0), u)
    ln = logit_normal_t(20_000, _gen(), mean=0.5, std=0.8)
    logit = torch.log(ln / (1 - ln))
    assert abs(logit.mean() - 0.5) < 0.03 and abs(logit.std() - 0.8) < 0.03


def test_bad_sampler_is_a_config_error():
    with pytest.raises(ConfigError, match="logit_normal"):
        FlowConfig(sampler="cosine")


def test_shared_t_independent_noise_and_per_item_generators():
    b = _batch()
    gens = [torch.Generator().manual_seed(10 + i) for i in range(4)]
    d = draw(b, gens, FlowConfig())
    assert torch.equal(d.video_t, d.audio_t)  # one t per item for both modalities (Ovi)
    assert not torch.allclose(d.video_noise.flatten(1)[:, :48], d.audio_noise.flatten(1)[:, :48])
    # item i's draws depend only on its own generator: splitting the batch changes nothing
    gens = [torch.Generator().manual_seed(10 + i) for i in range(4)]
    first = draw(b.select(slice(0, 2)), gens[:2], FlowConfig())
    second = draw(b.select(slice(2, 4)), gens[2:], FlowConfig())
    assert torch.equal(torch.cat([first.video_noise, second.video_noise]), d.video_noise)
    assert torch.equal(torch.cat([first.audio_t, second.audio_t]), d.audio_t)
    ind = draw(b, torch.Generator().manual_seed(0), FlowConfig(independent_t=True))
    assert not torch.equal(ind.video_t, ind.audio_t)


class ZeroModel(torch.nn.Module):
    """Predicts zero velocity; records what it was called with."""

    def forward(self, video, audio):
        self.seen = (video, audio)
        return (None if video is None else torch.zeros_like(video.latent),
                None if audio is None else torch.zeros_like(audio.latent))


def test_loss_is_the_weighted_sum_of_per_modality_mse():
    b, model = _batch(), ZeroModel()
    cfg = FlowConfig(video_weight=0.85, audio_weight=0.15)
    total, parts = flow_matching_loss(model, b, torch.Generator().manual_seed(3), cfg)
    d = draw(b, torch.Generator().manual_seed(3), cfg)
    lv = (d.video_noise - b.video).pow(2).mean()
    la = (d.audio_noise - b.audio).pow(2).mean()
    torch.testing.assert_close(parts["video"], lv)
    torch.testing.assert_close(parts["audio"], la)
    torch.testing.assert_close(total, 0.85 * lv + 0.15 * la)
    video_in = model.seen[0]
    torch.testing.assert_close(video_in.timestep, 1000 * d.video_t)
    torch.testing.assert_close(video_in.latent, noisy_latent(b.video, d.video_noise, d.video_t))


def test_either_modality_may_be_absent():
    model = ZeroModel()
    total, parts = flow_matching_loss(model, _batch(video=False), torch.Generator().manual_seed(0),
                                      FlowConfig(video_weight=0.0, audio_weight=1.0))
    assert set(parts) == {"audio"} and model.seen[0] is None
    torch.testing.assert_close(total, parts["audio"])


def test_clean_partner_holds_one_modality_and_drops_its_loss():
    b, model = _batch(n=64), ZeroModel()
    cfg = FlowConfig(clean_partner=0.5)
    d = draw(b, torch.Generator().manual_seed(5), cfg)
    held_v, held_a = d.video_t == 0, d.audio_t == 0
    assert not (held_v & held_a).any()  # never both: one modality is always denoised
    assert 16 < int((held_v | held_a).sum()) < 48 and held_v.any() and held_a.any()
    free = ~(held_v | held_a)
    assert torch.equal(d.video_t[free], d.audio_t[free])  # the rest keep Ovi's shared t
    everyone = draw(b, torch.Generator().manual_seed(5), FlowConfig(clean_partner=1.0))
    assert torch.equal((everyone.video_t == 0) | (everyone.audio_t == 0), torch.ones(64, dtype=torch.bool))

    _, parts = flow_matching_loss(model, b, torch.Generator().manual_seed(5), cfg)
    video_in = model.seen[0]
    assert torch.equal(video_in.latent[held_v], b.video[held_v])  # the held latent is clean
    lv = (d.video_noise - b.video).pow(2).flatten(1).mean(1)[~held_v].mean()
    torch.testing.assert_close(parts["video"], lv)  # held items do not count
    with pytest.raises(ConfigError, match="clean_partner"):
        FlowConfig(clean_partner=1.5)


def test_text_dropout_gives_the_dropped_items_the_empty_prompt():
    b, null = _batch(n=64), torch.randn(2, 16)  # the empty prompt: 2 tokens, padded to 3
    cfg = FlowConfig(text_dropout=0.3)
    d = draw(b, torch.Generator().manual_seed(5), cfg)
    plain = draw(b, torch.Generator().manual_seed(5), FlowConfig())
    assert torch.equal(d.video_t, plain.video_t) and torch.equal(d.audio_noise, plain.audio_noise)
    assert 8 < int(d.text_dropped.sum()) < 32  # about 30 % of 64

    model = ZeroModel()
    flow_matching_loss(model, b, torch.Generator().manual_seed(5), cfg, null_context=null)
    padded = torch.cat([null, torch.zeros(1, 16)])
    for seen in (model.seen[0].context, model.seen[1].context):  # both towers, same items
        assert torch.equal(seen[d.text_dropped], padded.expand(int(d.text_dropped.sum()), 3, 16))
        assert torch.equal(seen[~d.text_dropped], b.video_context[~d.text_dropped])
    with pytest.raises(InputError, match="null_context"):
        flow_matching_loss(model, b, _gen(), cfg)
    with pytest.raises(ConfigError, match="text_dropout"):
        FlowConfig(text_dropout=1.0)


# ---- cheaper video steps: windows of frames and one t per frame ----------------------------
def _clips(n: int = 3, frames: int = 6) -> LatentBatch:
    g = torch.Generator().manual_seed(3)
    video = torch.arange(n * 4 * frames * 16, dtype=torch.float32).view(n, 4, frames, 4, 4)
    return LatentBatch(video=video, video_context=torch.randn(n, 3, 16, generator=g))


def test_crop_video_takes_a_seeded_window_of_each_clip():
    b = _clips()
    gens = [_gen(20 + i) for i in range(3)]
    out = crop_video(b, 2, gens)
    assert out.video.shape == (3, 4, 2, 4, 4)
    for i, g in enumerate(_gen(20 + i) for i in range(3)):
        start = int(torch.randint(5, (1,), generator=g))  # the first draw of the item's generator
        assert torch.equal(out.video[i], b.video[i, :, start:start + 2])
    assert torch.equal(crop_video(b, 6, gens).video, b.video)  # the whole clip: start 0
    with pytest.raises(InputError, match="more than the clips' 6 latent frames"):
        crop_video(b, 7, gens)
    with pytest.raises(InputError, match="video-only"):
        crop_video(_batch(), 1, _gen())


def test_per_frame_t_noises_each_frame_at_its_own_level_and_tells_the_tower():
    b = _clips(n=2, frames=5)
    cfg = FlowConfig(video_weight=1.0, audio_weight=0.0, per_frame_t=True)
    d = draw(b, [_gen(1), _gen(2)], cfg)
    assert d.video_t.shape == (2, 5) and d.video_t.std() > 0.1  # five different levels per item
    xt = noisy_latent(b.video, d.video_noise, d.video_t)
    f = 3
    t = d.video_t[1, f]
    torch.testing.assert_close(xt[1, :, f], (1 - t) * b.video[1, :, f] + t * d.video_noise[1, :, f])

    seen = {}

    class Recorder(torch.nn.Module):  # stands in for the twin model: records the video input
        def forward(self, video, audio):
            seen["t"] = video.timestep
            return video.latent * 0, None

    flow_matching_loss(Recorder(), b, [_gen(1), _gen(2)], cfg)
    # 2x2 patches of a 4x4 latent: 4 tokens per frame, in (f, h, w) order
    assert seen["t"].shape == (2, 20)
    torch.testing.assert_close(seen["t"].view(2, 5, 4), 1000 * d.video_t[:, :, None].expand(-1, -1, 4))


def test_video_prefix_holds_the_first_frames_clean_and_leaves_them_out_of_the_loss():
    b = _clips(n=8, frames=6)
    cfg = FlowConfig(video_weight=1.0, audio_weight=0.0, video_prefix=0.5, video_prefix_frames=3)
    gens = [_gen(40 + i) for i in range(8)]
    t = draw(b, gens, cfg).video_t
    held = (t == 0).sum(1)
    assert t.shape == (8, 6) and 0 < (held > 0).sum() < 8 and held.max() <= 3
    for row, k in zip(t, held):  # a held prefix, then the item's one t for every other frame
        assert (row[:k] == 0).all() and (row[k:] == row[-1]).all() and row[-1] > 0
    plain = draw(b, [_gen(40 + i) for i in range(8)], replace(cfg, video_prefix=0.0)).video_t
    torch.testing.assert_close(t[:, -1], plain)  # the prefix draws come after every other draw

    class Exact(torch.nn.Module):  # the true velocity on free frames, garbage on held ones
        def forward(self, video, audio):
            return truth - 100.0 * (video.timestep.view(truth.shape[0], 6, 4) == 0)[
                :, None, :, :, None].expand(-1, 4, -1, -1, 4).float(), None

    d = draw(b, [_gen(40 + i) for i in range(8)], cfg)
    truth = d.video_noise - b.video
    loss, _ = flow_matching_loss(Exact(), b, [_gen(40 + i) for i in range(8)], cfg)
    assert loss.item() == 0.0  # held frames are the clip's given start, not a task
    off, _ = flow_matching_loss(Exact(), b, [_gen(40 + i) for i in range(8)],
                                replace(cfg, video_temporal_weight=1.0))
    assert off.item() == 0.0  # nor is the change from a held frame to the first free one


def test_video_frames_and_per_frame_t_are_checked():
    with pytest.raises(ConfigError, match="video_frames must be >= 1"):
        FlowConfig(video_frames=0)
    with pytest.raises(ConfigError, match="temporal patch of 1"):
        FlowConfig(per_frame_t=True, video_patch=(4, 2, 2))
    with pytest.raises(ConfigError, match="video_prefix needs a temporal patch of 1"):
        FlowConfig(video_prefix=0.5, video_patch=(4, 2, 2))
    with pytest.raises(ConfigError, match="video_prefix is a probability"):
        FlowConfig(video_prefix=1.5)
    with pytest.raises(ConfigError, match="video_prefix_frames must be >= 1"):
        FlowConfig(video_prefix_frames=0)


def test_x0_weighting_is_the_x0_error_of_a_velocity_prediction():
    """With loss_weighting "x0" the loss of a velocity prediction v̂ equals the MSE of its
    clean-latent estimate x_t - t·v̂ (the velocity error times t), whatever t is."""
    b = _clips(n=4, frames=3)
    cfg = FlowConfig(video_weight=1.0, audio_weight=0.0, loss_weighting="x0")
    seen = {}

    class Guess(torch.nn.Module):  # a fixed, wrong velocity
        def forward(self, video, audio):
            seen["xt"], seen["t"] = video.latent, video.timestep / 1000
            return torch.ones_like(video.latent), None

    total, parts = flow_matching_loss(Guess(), b, [_gen(i) for i in range(4)], cfg)
    t = seen["t"].view(-1, 1, 1, 1, 1)
    x0_hat = seen["xt"] - t * torch.ones_like(seen["xt"])
    torch.testing.assert_close(total, (x0_hat - b.video).pow(2).mean())
    plain, _ = flow_matching_loss(Guess(), b, [_gen(i) for i in range(4)],
                                  FlowConfig(video_weight=1.0, audio_weight=0.0))
    assert plain > total  # t < 1: the plain loss weights the same error by 1/t² more
    with pytest.raises(ConfigError, match="loss_weighting"):
        FlowConfig(loss_weighting="snr")


def test_loss_weighting_per_modality():
    """{"video": "x0"}: the video loss is x0-weighted as with "x0" for both, the audio loss
    stays the plain velocity MSE as with "velocity" for both."""
    class Guess(torch.nn.Module):  # a fixed, wrong velocity for both towers
        def forward(self, video, audio):
            return torch.ones_like(video.latent), torch.ones_like(audio.latent)

    def parts(weighting):
        cfg = FlowConfig(independent_t=True, loss_weighting=weighting)
        return flow_matching_loss(Guess(), _batch(), [_gen(i) for i in range(4)], cfg)[1]

    mixed, x0, plain = parts({"video": "x0"}), parts("x0"), parts("velocity")
    torch.testing.assert_close(mixed["video"], x0["video"])
    torch.testing.assert_close(mixed["audio"], plain["audio"])
    assert x0["audio"] < plain["audio"]  # the audio side did change with "x0" for both
    for bad in ({"text": "x0"}, {}, {"video": "snr"}):
        with pytest.raises(ConfigError, match="loss_weighting"):
            FlowConfig(loss_weighting=bad)


def test_video_channel_weights_weight_each_channels_error():
    b = _clips(n=2, frames=3)
    channels = b.video.shape[1]

    class Guess(torch.nn.Module):
        def forward(self, video, audio):
            seen["xt"], seen["t"] = video.latent, video.timestep / 1000
            return torch.ones_like(video.latent), None

    seen = {}
    weights = tuple(float(c) for c in range(channels))
    cfg = FlowConfig(video_weight=1.0, audio_weight=0.0, loss_weighting="x0",
                     video_channel_weights=weights)
    total, _ = flow_matching_loss(Guess(), b, [_gen(i) for i in range(2)], cfg)
    x0_hat = seen["xt"] - seen["t"].view(-1, 1, 1, 1, 1)
    per_channel = (x0_hat - b.video).pow(2).mean(dim=(0, 2, 3, 4))
    torch.testing.assert_close(total, (per_channel * torch.tensor(weights)).mean())
    with pytest.raises(ConfigError, match="video_channel_weights must be non-empty and >= 0"):
        FlowConfig(video_channel_weights=(1.0, -1.0))


def test_motion_weight_favours_the_cells_that_change():
    """A clip whose only change is a "ball" moving from one cell to another: the cell it is
    in gets 4x the weight of every other (1 + 3·1 against 1), the clip's mean weight stays
    1; a clip that never changes gets 1 everywhere."""
    x0 = torch.zeros(2, 3, 6, 4, 4)
    x0[0, :, :3, 1, 1] = 2.0  # the "ball" sits in (1, 1) for 3 frames, then in (2, 3)
    x0[0, :, 3:, 2, 3] = 2.0
    w = motion_weight(x0, 3.0)
    assert w.shape == (2, 1, 6, 4, 4)
    torch.testing.assert_close(w.mean(dim=(1, 2, 3, 4)), torch.ones(2))
    torch.testing.assert_close(w[1], torch.ones(1, 6, 4, 4))  # static clip
    ball = torch.zeros(6, 4, 4, dtype=torch.bool)
    ball[:3, 1, 1] = ball[3:, 2, 3] = True
    torch.testing.assert_close(w[0, 0][ball], torch.full((6,), 4.0) * w[0, 0][~ball][0])
    assert torch.all(w[0, 0][~ball] == w[0, 0][~ball][0])
    with pytest.raises(ConfigError, match="video_motion_weight must be >= 0"):
        FlowConfig(video_motion_weight=-1.0)


def test_motion_weight_enters_the_video_loss_only():
    class Guess(torch.nn.Module):
        def forward(self, video, audio):
            return torch.ones_like(video.latent), torch.ones_like(audio.latent)

    def parts(strength):
        cfg = FlowConfig(video_motion_weight=strength)
        return flow_matching_loss(Guess(), _batch(), [_gen(i) for i in range(4)], cfg)[1]

    plain, moving = parts(0.0), parts(4.0)
    torch.testing.assert_close(moving["audio"], plain["audio"])
    assert not torch.allclose(moving["video"], plain["video"])


def test_temporal_weight_adds_the_errors_frame_to_frame_change():
    """With video_temporal_weight λ the video loss is the MSE plus λ times the mean squared
    change of the error between neighbouring frames: an error that is the same in every
    frame costs what it did, one of the same size that flips sign every frame costs
    (1 + 4λ)·its MSE (each change is twice the error); the audio loss is untouched; the
    x0 weighting's t² weights the change as it weights the error."""
    b = _batch()
    frames = b.video.shape[2]
    sign = torch.tensor([(-1.0) ** f for f in range(frames)]).view(1, 1, -1, 1, 1)

    class Off(torch.nn.Module):
        """Predicts the batch's targets (the same draw the loss makes) plus a known error."""

        def __init__(self, cfg: FlowConfig, flip: bool):
            super().__init__()
            self.cfg, self.flip = cfg, flip

        def forward(self, video, audio):
            d = draw(b, [_gen(i) for i in range(4)], self.cfg)
            target = velocity_target(b.video, d.video_noise)
            error = 0.5 * (sign if self.flip else torch.ones_like(sign))
            return target + error, velocity_target(b.audio, d.audio_noise) + 0.5

    for weighting in ("velocity", "x0"):
        losses = {}
        for lam in (0.0, 3.0):
            for flip in (False, True):
                cfg = FlowConfig(video_temporal_weight=lam, loss_weighting=weighting)
                losses[lam, flip] = flow_matching_loss(Off(cfg, flip), b,
                                                       [_gen(i) for i in range(4)], cfg)[1]
        for flip in (False, True):
            torch.testing.assert_close(losses[3.0, flip]["audio"], losses[0.0, flip]["audio"])
        torch.testing.assert_close(losses[3.0, False]["video"], losses[0.0, False]["video"])
        torch.testing.assert_close(losses[3.0, True]["video"], 13.0 * losses[0.0, True]["video"])
    with pytest.raises(ConfigError, match="video_temporal_weight must be >= 0"):
        FlowConfig(video_temporal_weight=-1.0)
