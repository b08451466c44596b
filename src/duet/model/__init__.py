"""Model: the Ovi twin-tower DiT (towers, fusion, RoPE, attention)."""

from duet.model.fusion import TwinModel
from duet.model.tower import ModalityInput, Tower

__all__ = ["ModalityInput", "Tower", "TwinModel"]
