"""Is model B better than model A on held-out prompts, or is it the draw? Both models are
scored on the same prompts with the same seeds, so each clip of B has its twin in A and the
comparison can be paired: the difference per prompt removes what the prompt itself makes
easy or hard. Samples of one prompt share that prompt, so they are not independent; the
standard error is taken over prompts (their mean difference), not over clips.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from duet.errors import InputError

__all__ = ["PairedChange", "paired_change"]


@dataclass(frozen=True)
class PairedChange:
    """Mean of B − A over prompts, its standard error, and the number of prompts."""

    mean: float
    stderr: float
    prompts: int

    @property
    def z(self) -> float:
        """Mean over standard error: |z| ≥ 2 is a move the draw of prompts rarely makes."""
        if self.stderr > 0:
            return self.mean / self.stderr
        return 0.0 if self.mean == 0 else float(np.sign(self.mean) * np.inf)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} ± {self.stderr:.3f}"


def paired_change(before: np.ndarray, after: np.ndarray) -> PairedChange:
    """`before`, `after`: one score per clip, shaped (prompts, samples), clip [i, s] of both
    made from prompt i with seed s. NaN scores (a clip with nothing to score) are left out
    of their prompt's mean; a prompt with no score in either model is left out."""
    a, b = np.asarray(before, np.float64), np.asarray(after, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"paired scores must both be (prompts, samples) arrays of one shape, "
                         f"got {a.shape} and {b.shape}; score both models on the same prompts "
                         "and seeds")
    with warnings.catch_warnings():  # a prompt with no score in one model: its mean is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        d = np.nanmean(b, axis=1) - np.nanmean(a, axis=1)
    d = d[np.isfinite(d)]
    if len(d) < 2:
        raise InputError(f"{len(d)} prompt(s) scored in both models; a standard error needs "
                         "at least 2")
    return PairedChange(float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d))
