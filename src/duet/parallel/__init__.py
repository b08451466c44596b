"""Parallel inference: Ulysses sequence parallelism (`sequence.py`). Training's FSDP lives
in `duet.train.parallel`."""

from duet.parallel.sequence import SequenceParallel

__all__ = ["SequenceParallel"]
