"""Duet: joint audio-video generation with fused twin diffusion transformers."""

__version__ = "0.1.0"
