"""DiffusionNFT's loss (Zheng et al. 2025), per modality, in x0 space.

For a rollout's clean latent x0, fresh noise ε and a time t of its trajectory, the model
sees x_t = (1 - t)·x0 + t·ε and predicts velocities; x̂0(v) = x_t - t·v. With the current
policy v_θ, the old policy v_old (no gradient) and the normalised advantage A:

    v⁺ = (1 - β)·v_old + β·v_θ          the implicit positive policy
    v⁻ = (1 + β)·v_old - β·v_θ          the implicit negative policy (mirror of v⁺)
    r  = clamp(A / A_max / 2 + 1/2, 0, 1)
    L  = A_max / β · [ r·‖x̂0(v⁺) - x0‖² / w⁺ + (1 - r)·‖x̂0(v⁻) - x0‖² / w⁻ ]

where w = mean |x̂0 - x0| over the sample, detached (an adaptive weight: each sample's loss
is scale-free). A good sample (r > 1/2) pulls v⁺ toward it and pushes v⁻ away; at
v_θ = v_old the gradient is A_max·(1 - 2r)·2t·(x̂0 - x0)/w per element (β cancels). A
small KL keeps v_θ near the reference model: kl_weight·‖v_θ - v_ref‖². OmniNFT's region
weights multiply the squared error per latent element (the video loss only).
"""

from __future__ import annotations

from torch import Tensor

from duet.errors import InputError

MIN_SCALE = 1e-5  # floor of the adaptive weight w (a perfect prediction must not divide by 0)


def _per_item(t: Tensor, like: Tensor) -> Tensor:
    return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def x0_estimate(x_t: Tensor, velocity: Tensor, t: Tensor) -> Tensor:
    """x̂0 = x_t - t·v (flow matching: x_t = (1 - t)·x0 + t·ε, v = ε - x0); t [B]."""
    return x_t - _per_item(t, x_t) * velocity


def reward_weight(advantage: Tensor, adv_clip_max: float) -> Tensor:
    """r = clamp(A / A_max / 2 + 1/2, 0, 1): how much of the loss pulls toward the sample."""
    return (advantage / adv_clip_max / 2 + 0.5).clamp(0.0, 1.0)


def _scaled_error(pred: Tensor, x0: Tensor, weights: Tensor | None) -> Tensor:
    """Per item: mean(weights·(pred - x0)²) / w, w = detached mean |pred - x0|."""
    err = pred - x0
    dims = tuple(range(1, err.dim()))
    w = err.detach().abs().mean(dim=dims).clamp_min(MIN_SCALE)
    sq = err.pow(2) if weights is None else weights * err.pow(2)
    return sq.mean(dim=dims) / w


def nft_loss(v_theta: Tensor, v_old: Tensor, x_t: Tensor, x0: Tensor, t: Tensor,
             advantage: Tensor, beta: float = 1.0, adv_clip_max: float = 5.0,
             weights: Tensor | None = None) -> Tensor:
    """DiffusionNFT's loss per item [B] (module docstring), in float32.

    v_theta, v_old, x_t, x0: one modality's [B, ...]; t: [B] in [0, 1]; advantage: [B];
    weights: per-element loss weights broadcastable to x0 (None: uniform).
    """
    if not (beta > 0 and adv_clip_max > 0):
        raise InputError(f"nft_loss needs beta > 0 and adv_clip_max > 0, got {beta}, "
                         f"{adv_clip_max}")
    if v_theta.shape != x0.shape or v_old.shape != x0.shape or x_t.shape != x0.shape:
        raise InputError(f"v_theta {tuple(v_theta.shape)}, v_old {tuple(v_old.shape)} and x_t "
                         f"{tuple(x_t.shape)} must all have x0's shape {tuple(x0.shape)}")
    v_theta, v_old, x_t, x0 = (x.float() for x in (v_theta, v_old.detach(), x_t, x0))
    r = reward_weight(advantage.float(), adv_clip_max)
    positive = (1 - beta) * v_old + beta * v_theta
    negative = (1 + beta) * v_old - beta * v_theta
    pos = _scaled_error(x0_estimate(x_t, positive, t), x0, weights)
    neg = _scaled_error(x0_estimate(x_t, negative, t), x0, weights)
    return adv_clip_max / beta * (r * pos + (1 - r) * neg)


def kl_penalty(v_theta: Tensor, v_ref: Tensor) -> Tensor:
    """‖v_θ - v_ref‖² per item [B] (mean over elements), toward the reference model."""
    diff = v_theta.float() - v_ref.detach().float()
    return diff.pow(2).mean(dim=tuple(range(1, diff.dim())))
