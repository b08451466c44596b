"""Layer-wise gradient surgery: identical forward, the audio gradient of each video
cross-attention read scaled by its block's factor."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import pytest
import torch

from duet.errors import ConfigError
from duet.train.rl.surgery import GradientSurgery, block_scales, cross_modal_readers, scale_grad

from rl_helpers import tiny_inputs, tiny_twin


def test_scale_grad_is_identity_forward_and_scales_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = scale_grad(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, 0.25 * torch.arange(4.0).expand(3, 4))
    assert scale_grad(x, 1.0) is x


def test_block_scales_pattern():
    assert block_scales(4) == (0.0, 0.1, 1.0, 0.3)
    assert block_scales(30) == (0.0,) + (0.1,) * 7 + (1.0,) * 15 + (0.3,) * 7
    assert block_scales(1) == (0.0,) and block_scales(2) == (0.0, 0.3)
    with pytest.raises(ConfigError, match="at least one"):
        block_scales(0)


class _Probes:
    """Adds a zero tensor d_k to the audio states that video read k sees, so dL/d(d_k) is
    the gradient flowing back into the audio side through that read alone."""

    def __init__(self, model, like):
        self.deltas = [torch.zeros(like, requires_grad=True) for _ in cross_modal_readers(model)]
        self.handles = [m.register_forward_pre_hook(self._hook(k), with_kwargs=True)
                        for k, m in enumerate(cross_modal_readers(model))]

    def _hook(self, k):
        def hook(module, args, kwargs):
            args = list(args)
            i = 3 if hasattr(module, "cross_modal_weights") else 1  # Ovi: (x, ctx, rope, other)
            other = args[i]
            args[i] = other + self.deltas[k] if isinstance(other, torch.Tensor) else \
                dataclasses.replace(other, x=other.x + self.deltas[k])
            return tuple(args), kwargs
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _read_grads(model, scales):
    """Video output and dL_video / d(audio state at each read), with surgery `scales`."""
    v, a = tiny_inputs()
    like = (2, 6, model.cfg.audio.dim)
    probes = _Probes(model, like)  # registered first: runs before the surgery's hooks
    try:
        with GradientSurgery(model, scales) if scales is not None else nullcontext():
            out_v, _ = model(v, a)
        w = torch.randn(out_v.shape, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad((out_v * w).sum(), probes.deltas, allow_unused=True)
    finally:
        probes.remove()
    return out_v.detach(), [torch.zeros(like) if g is None else g for g in grads]


@pytest.mark.parametrize("bridge", [False, True], ids=["ovi", "bridge"])
def test_identical_forward_and_scaled_gradients(bridge):
    model = tiny_twin(bridge)
    base_out, base = _read_grads(model, None)
    out, got = _read_grads(model, block_scales(4))
    assert torch.equal(out, base_out)
    assert all(g.abs().max() > 0 for g in base)
    assert got[0].abs().max() == 0  # first block: no gradient into the audio states
    torch.testing.assert_close(got[3], 0.3 * base[3])  # last block: nothing downstream scales
    for k, s in enumerate((0.5, 0.1, 2.0, 0.3)):  # one block scaled, the others left at 1
        scales = [1.0] * 4
        scales[k] = s
        out, got = _read_grads(model, tuple(scales))
        assert torch.equal(out, base_out)
        torch.testing.assert_close(got[k], s * base[k])
        for j in range(k + 1, 4):  # reads after block k do not pass through it
            torch.testing.assert_close(got[j], base[j])


def test_zero_scales_cut_every_path_from_the_video_loss_to_the_audio_tower():
    model = tiny_twin()
    v, a = tiny_inputs()
    with GradientSurgery(model, (0.0,) * 4):
        out_v, _ = model(v, a)
    out_v.square().sum().backward()
    audio = [p.grad for n, p in model.named_parameters() if n.startswith("audio_model.")]
    video = [p.grad for n, p in model.named_parameters() if n.startswith("video_model.blocks.")]
    assert all(g is None or g.abs().max() == 0 for g in audio)
    assert any(g is not None and g.abs().max() > 0 for g in video)


def test_scales_must_match_the_layers():
    with pytest.raises(ConfigError, match="surgery_scales has 3 values but the model has 4"):
        GradientSurgery(tiny_twin(), (0.0, 1.0, 1.0))
