"""Run the official Ovi reference cases (tests/fixtures/ovi_tiny) through Duet.

The reference stores each forward call the official way, as lists of unpadded items; these
helpers turn a case into Duet's padded `[B, ...]` inputs with lengths, run it, and cut the
outputs back to items, so tests and `benchmarks/parity.py` share one definition of a case.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from duet.model import ModalityInput, TwinModel
from duet.presets import get_preset
from duet.sampling.guidance import Conditioning, Guidance, guided_velocity
from duet.sampling.sampler import sample
from duet.sampling.schedule import flow_sigmas


def load_cases(ref: Path) -> tuple[dict[str, dict], dict[str, Tensor]]:
    """Case specs by name, and every stored tensor (forward cases and UniPC vectors)."""
    cases = {c["name"]: c for c in json.loads((ref / "cases.json").read_text())["cases"]}
    tensors = load_file(ref / "cases.safetensors")
    tensors.update(load_file(ref / "unipc.safetensors"))
    return cases, tensors


def load_model(ref: Path, dtype: torch.dtype) -> TwinModel:
    """The tiny reference model, loaded strictly from the official-format weights."""
    model = TwinModel.from_config(get_preset("tiny").model, device="meta")
    model.load_state_dict(load_file(ref / "weights.safetensors"), strict=True, assign=True)
    return model.to(dtype).eval()


def pad_stack(items: list[Tensor], dim: int) -> Tensor:
    """Zero-pad items along `dim` to the longest and stack them into a batch."""
    n = max(x.shape[dim] for x in items)
    pads = [[0, 0] * (x.dim() - 1 - dim) + [0, n - x.shape[dim]] for x in items]
    return torch.stack([torch.nn.functional.pad(x, p) for x, p in zip(items, pads)])


def case_inputs(case: dict, t: dict[str, Tensor], dtype: torch.dtype,
                ) -> tuple[ModalityInput | None, ModalityInput | None]:
    """An official list-of-items call as padded Duet inputs."""
    ts = t[case["t"]]
    video = audio = None
    if case["vid"] is not None:
        lat = [t[n].to(dtype) for n in case["vid"]]
        hw = lat[0].shape[2] * lat[0].shape[3] // 4  # tokens per latent frame (patch 1x2x2)
        lens = torch.tensor([x.shape[1] * hw for x in lat])
        vt = ts
        if case["first_frame_is_clean"]:
            vt = ts[:, None].repeat(1, int(lens.max())).clone()
            vt[:, :hw] = 0
        ctx = pad_stack([t[n].to(dtype) for n in case["vid_context"]], 0)
        video = ModalityInput(pad_stack(lat, 1), vt, ctx, lens)
    if case["audio"] is not None:
        lat = [t[n].to(dtype) for n in case["audio"]]
        ctx = pad_stack([t[n].to(dtype) for n in case["audio_context"]], 0)
        audio = ModalityInput(pad_stack(lat, 0), ts, ctx, torch.tensor([x.shape[0] for x in lat]))
    return video, audio


@torch.no_grad()
def run_case(model: TwinModel, case: dict, t: dict[str, Tensor],
             dtype: torch.dtype) -> dict[str, Tensor]:
    """Outputs by reference name (`out.<case>.vid.<i>` ...), cut to each item's shape."""
    video, audio = case_inputs(case, t, dtype)
    v, a = model(video, audio, skip_blocks=(case["slg_layer"],) if case["slg_layer"] else ())
    out = {}
    for name, shape in case["output_shapes"].items():
        kind, i = name.split(".")[2:4]
        out[name] = (v if kind == "vid" else a)[int(i)][tuple(slice(0, n) for n in shape)]
    return out


def run_engine_loop(model: TwinModel, t: dict[str, Tensor], dtype: torch.dtype,
                    batched: bool = True) -> list[tuple[Tensor, Tensor]]:
    """The official 4-step loop: UniPC, shift 5, CFG 4/3, negative pass skipping block 1."""
    c = lambda n: t[n].to(dtype)[None]  # noqa: E731
    denoise = functools.partial(
        guided_velocity, model, cond=Conditioning(c("in.ctx.pos"), c("in.ctx.pos")),
        uncond=Conditioning(c("in.ctx.vneg"), c("in.ctx.aneg")),
        guidance=Guidance(4.0, 3.0, negative_skip_blocks=(1,), batched=batched))
    states: list[tuple[Tensor, Tensor]] = []
    sample(denoise, c("in.vid.A"), c("in.audio.A"), flow_sigmas(4, 5.0), disable=True,
           callback=lambda d: states.append((d["video"][0], d["audio"][0])))
    return states
