"""The one device policy: the accelerator when there is one, else cpu."""

import pytest
import torch

from duet.devices import default_device, resolve_device_dtype
from duet.train.parallel import resolve_device


def test_cpu_when_no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *a, **k: None)
    assert default_device() == torch.device("cpu")
    assert resolve_device_dtype(None, None) == (torch.device("cpu"), torch.float32)
    assert resolve_device(None) == torch.device("cpu")


def test_accelerator_picked_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.accelerator, "current_accelerator",
                        lambda *a, **k: torch.device("cuda", 0))
    assert default_device() == torch.device("cuda")
    assert resolve_device(None) == torch.device("cuda")
