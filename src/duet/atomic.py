"""Atomic file writes: a file appears under its final name complete, or not at all.

Everything Duet writes (MP4s, WAVs, weights, bundle configs, training shards, checkpoint
manifests) goes through `atomic_path`, so a crash or a bad input never leaves a half file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from duet.errors import DuetError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], error: type[DuetError] = DuetError) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The temp file lives in the same folder so `os.replace` is an atomic rename on one
    filesystem; it is a hidden ``.NAME.XXXX.part`` name that the block itself creates. The
    final file gets the permissions of any new file (0666 less the umask) even where the
    writer made it private (safetensors writes 0600), so a bundle or clip can be shared.
    Missing parent folders are created. On any
    exception the temp file is removed and whatever was at `path` before is left untouched.
    Problems with the path itself raise `error` (the caller's DuetError subclass).
    """
    target = Path(path)
    if target.is_dir():
        raise error(f"{target} is a folder; pass a file path such as {target / 'out'}.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the folder {target.parent}: {exc.strerror or exc}; "
                    "choose a writable output path.") from exc
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        yield tmp
        try:
            if tmp.is_file():
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as exc:
            raise error(f"cannot move the finished file onto {target}: {exc.strerror or exc}; "
                        "check that the path is writable.") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any],
                 error: type[DuetError] = DuetError) -> Path:
    """Run `write(tmp_path)` and move the result onto `path` atomically."""
    with atomic_path(path, error) as tmp:
        write(tmp)
    return Path(path)
