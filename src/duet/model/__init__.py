"""Model: the Ovi twin-tower DiT (towers, fusion, RoPE, attention)."""

from duet.model.fusion import TwinModel
from duet.model.state import ModalityInput
from duet.model.tower import Tower

__all__ = ["ModalityInput", "Tower", "TwinModel"]
