"""DiffusionNFT's loss against its equation, written out by hand."""

from __future__ import annotations

import pytest
import torch

from duet.errors import InputError
from duet.train.rl.loss import kl_penalty, nft_loss, reward_weight, x0_estimate


def _case(seed: int = 0, shape: tuple[int, ...] = (3, 2, 4)):
    g = torch.Generator().manual_seed(seed)
    x0, eps, v_theta, v_old = (torch.randn(shape, generator=g) for _ in range(4))
    t = torch.tensor([0.9, 0.5, 0.2])
    x_t = (1 - t.view(-1, 1, 1)) * x0 + t.view(-1, 1, 1) * eps
    return x0, x_t, v_theta, v_old, t


def _by_hand(v_theta, v_old, x_t, x0, t, adv, beta, a_max, weights=None):
    """The equation, item by item, with plain Python loops."""
    out = []
    for i in range(x0.shape[0]):
        r = min(1.0, max(0.0, float(adv[i]) / a_max / 2 + 0.5))
        v_pos = (1 - beta) * v_old[i] + beta * v_theta[i]
        v_neg = (1 + beta) * v_old[i] - beta * v_theta[i]
        terms = []
        for v in (v_pos, v_neg):
            err = x_t[i] - float(t[i]) * v - x0[i]
            w = float(err.abs().mean())
            wt = torch.ones_like(err) if weights is None else weights[i].expand_as(err)
            terms.append(float((wt * err**2).mean()) / w)
        out.append(a_max / beta * (r * terms[0] + (1 - r) * terms[1]))
    return torch.tensor(out)


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.1])
def test_matches_the_equation(beta):
    x0, x_t, v_theta, v_old, t = _case()
    adv = torch.tensor([7.0, 1.3, -2.0])  # 7 is past A_max: r clamps to 1
    got = nft_loss(v_theta, v_old, x_t, x0, t, adv, beta=beta, adv_clip_max=5.0)
    torch.testing.assert_close(got, _by_hand(v_theta, v_old, x_t, x0, t, adv, beta, 5.0),
                               rtol=1e-5, atol=1e-6)


def test_region_weights_multiply_the_squared_error():
    x0, x_t, v_theta, v_old, t = _case()
    adv = torch.tensor([0.5, -1.0, 3.0])
    weights = torch.rand(3, 1, 4, generator=torch.Generator().manual_seed(1)) + 1
    got = nft_loss(v_theta, v_old, x_t, x0, t, adv, weights=weights)
    torch.testing.assert_close(got, _by_hand(v_theta, v_old, x_t, x0, t, adv, 1.0, 5.0, weights),
                               rtol=1e-5, atol=1e-6)


def test_reward_weight_and_x0():
    assert reward_weight(torch.tensor([-9.0, -5.0, 0.0, 2.5, 9.0]), 5.0).tolist() == \
        [0.0, 0.0, 0.5, 0.75, 1.0]
    x_t, v, t = torch.ones(2, 3), torch.full((2, 3), 2.0), torch.tensor([0.25, 0.5])
    assert x0_estimate(x_t, v, t).tolist() == [[0.5] * 3, [0.0] * 3]


def test_gradient_at_the_old_policy():
    """At v_theta = v_old: dL/dv_theta = A_max (1 - 2r) 2t (x0_hat - x0) / w / numel (beta
    cancels), so a good sample (r > 1/2) moves x0_hat toward x0 and a bad one away from it."""
    x0, x_t, _, v_old, t = _case(2)
    adv = torch.tensor([2.0, -3.0, 0.0])
    v = v_old.clone().requires_grad_(True)
    nft_loss(v, v_old, x_t, x0, t, adv, beta=0.7).sum().backward()
    err = x_t - t.view(-1, 1, 1) * v_old - x0
    w = err.abs().mean(dim=(1, 2), keepdim=True)
    r = reward_weight(adv, 5.0).view(-1, 1, 1)
    want = 5.0 * (1 - 2 * r) * 2 * t.view(-1, 1, 1) * err / w / err[0].numel()
    torch.testing.assert_close(v.grad, want, rtol=1e-5, atol=1e-7)
    moved = err + t.view(-1, 1, 1) * v.grad * 1e-3  # x0_hat after a small descent step on v
    closer = moved.pow(2).sum(dim=(1, 2)) < err.pow(2).sum(dim=(1, 2))
    assert closer.tolist()[:2] == [True, False]  # A = 0 (item 2) has no gradient here
    assert v.grad[2].abs().max() == 0


def test_kl_penalty_and_shape_checks():
    a, b = torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
    assert kl_penalty(a, b).tolist() == [1.0, 3.0]
    x0, x_t, v_theta, v_old, t = _case()
    with pytest.raises(InputError, match="x0's shape"):
        nft_loss(v_theta[:, :1], v_old, x_t, x0, t, torch.zeros(3))
    with pytest.raises(InputError, match="beta > 0"):
        nft_loss(v_theta, v_old, x_t, x0, t, torch.zeros(3), beta=0.0)
