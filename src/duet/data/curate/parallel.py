"""Running `curate_input` over many inputs: a process pool, or a Ray Data pipeline.

Each job writes its own part files (`parts.write_part`) from the worker, so the driver never
holds more than one input's tensors and a killed run keeps what it finished. Both backends
run the same function on the same jobs; only the scheduling differs, and the shards are
assembled afterwards in input order, so the two give identical shards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from duet.errors import ConfigError

log = logging.getLogger(__name__)

Job = dict[str, str]  # {"path", "part": part file stem, "config": CurateConfig JSON, "log_levels"}


def logger_levels() -> str:
    """The levels set on this process's loggers (JSON), so workers stay as quiet as the
    driver: the CLI silences libraries' import-time chatter, which a fresh process repeats."""
    manager = logging.Logger.manager
    return json.dumps({name: lg.level for name, lg in manager.loggerDict.items()
                       if isinstance(lg, logging.Logger) and lg.level})


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread for torch and OpenCV while a job runs (workers run side by side,
    and one thread each is fastest), restored after, since a 1-worker run uses this process."""
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def run_job(job: Job) -> Job:
    """Curate one input in this process and write its part files."""
    from duet.data.curate.config import CurateConfig
    from duet.data.curate.parts import write_part
    from duet.data.curate.process import curate_input

    for name, level in json.loads(job["log_levels"]).items():
        logging.getLogger(name).setLevel(level)
    cfg = CurateConfig.from_json(job["config"])
    with _one_thread():
        write_part(job["part"], curate_input(job["path"], cfg))
    return job


def run_pool(jobs: Sequence[Job], workers: int, done: Callable[[Job], Any]) -> None:
    """`run_job` over `jobs` in `workers` spawned processes (in this one when workers is 1)."""
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            done(run_job(job))
        return
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        for job in pool.imap_unordered(run_job, jobs):
            done(job)


def run_ray(jobs: Sequence[Job], workers: int, address: str | None,
            done: Callable[[Job], Any]) -> None:
    """`run_job` as a Ray Data map: a local Ray instance with `workers` CPUs, or the cluster
    at `address` (whose workers must see the inputs and the output folder at the same paths)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'duet[curate]'") from None
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False)
    try:
        ds = ray.data.from_items(list(jobs), override_num_blocks=max(1, len(jobs)))
        for job in ds.map(run_job, num_cpus=1).iter_rows():
            done(job)
    finally:
        if not address:
            ray.shutdown()
