"""A `duet ui` server on a free port of this machine, and a small LoRA adapter to stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ui_helpers import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The running page (in this process, model loaded on the first click) and its URL."""
    from duet.ui.server import launch

    page = launch([], port=free_port(), out_dir=tmp_path_factory.mktemp("ui"), warm=False)
    yield page
    page.close()


@pytest.fixture(scope="session")
def adapter(tmp_path_factory) -> Path:
    """A rank-2 self-attention adapter for the demo model with non-zero B (a trained one)."""
    from duet.presets import get_preset
    from duet.lora import LoraSpec, add_lora, save_adapter
    from duet.model import TwinModel

    model = TwinModel.from_config(get_preset("demo").model)
    spec = LoraSpec(rank=2, targets=("self_attn",))
    add_lora(model, spec)
    with torch.no_grad():  # peft starts B at zero
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    return save_adapter(tmp_path_factory.mktemp("lora") / "adapter", model, spec)
