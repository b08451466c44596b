"""Atomic file writes: a file appears under its final name complete, or not at all.

Everything Duet writes (MP4s, WAVs, weights, bundle configs, training shards, checkpoint
manifests) goes through `atomic_path`, so a crash or a bad input never leaves a half file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from duet.errors import DuetError

_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def writable_target(path: str | os.PathLike[str], error: type[DuetError] = DuetError) -> Path:
    """The file a write to `path` replaces: `path` itself, or a symlink's final target (the
    link stays a link and points to the new file). Refuses, with `error`, a folder and
    anything that is not a regular file (a device such as /dev/null, a FIFO, a socket):
    replacing one by a file would destroy it, and writing into one loses the output."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    try:
        mode = target.stat().st_mode
    except OSError:
        return target  # nothing there yet (or a dangling link): a new file is made
    shown = given if target == given else f"{given} (a link to {target})"
    if stat.S_ISDIR(mode):
        raise error(f"{shown} is a folder, not a file; pass a file path inside it.")
    for test, kind in _SPECIAL:
        if test(mode):
            raise error(f"{shown} is {kind}, not a regular file; Duet writes only regular "
                        "files: pass a file path.")
    return target


def check_writable(path: str | os.PathLike[str], error: type[DuetError] = DuetError) -> Path:
    """`writable_target`, and that a file can be made next to it, without writing `path`:
    a run that will take minutes calls this first, so a bad `-o` fails in a second."""
    target = writable_target(path, error)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders below are made at write time
    if not folder.is_dir():
        raise error(f"cannot write {path}: {folder} is a file, not a folder.")
    if folder == target.parent:  # the real test: make (and drop) a file where the output goes
        with _created(_part_name(target), path, error):
            pass
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise error(_cannot_write(path, OSError(errno.EACCES, os.strerror(errno.EACCES)), folder))
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], error: type[DuetError] = DuetError) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The temp file lives in the same folder so `os.replace` is an atomic rename on one
    filesystem; it is a hidden ``.NAME.PID-XXXX.part`` file, created empty before the block
    runs (so an unwritable folder is reported with its real cause, naming `path`). The pid
    lets a later write remove the part files of writers that died (kill -9, power loss)
    without touching one that a live process is still writing. The final file gets the
    permissions of any new file (0666 less the umask) even where the writer made it private
    (safetensors writes 0600), so a bundle or clip can be shared. Missing parent folders are
    created. On any exception the temp file is removed and whatever was at `path` before is
    left untouched. A symlink is written through (see `writable_target`). Problems with the
    path itself raise `error` (the caller's DuetError subclass).
    """
    target = writable_target(path, error)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the folder {target.parent}: {exc.strerror or exc}; "
                    "choose a writable output path.") from exc
    _remove_stale_parts(target)
    tmp = _part_name(target)
    with _created(tmp, path, error):  # removes tmp again on any exception
        yield tmp
        try:
            if tmp.is_file():
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as exc:
            raise error(f"cannot move the finished file onto {target}: "
                        f"{exc.strerror or exc}; check that the path is writable.") from exc


def _part_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"


@contextlib.contextmanager
def _created(tmp: Path, path: str | os.PathLike[str], error: type[DuetError]) -> Iterator[None]:
    """Create `tmp` empty for the block, and remove it afterwards if it is still there."""
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise error(_cannot_write(path, exc, tmp.parent)) from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _cannot_write(path: str | os.PathLike[str], exc: OSError, folder: Path) -> str:
    """Name the path the user gave and the real reason (not the temp file's name)."""
    denied = "is not writable by this user (permission denied)"
    reason = {errno.EACCES: denied, errno.EPERM: denied,
              errno.EROFS: "is on a read-only filesystem",
              errno.ENOSPC: "is on a full disk", errno.EDQUOT: "is over its disk quota",
              errno.ENOENT: "does not accept new files (a virtual filesystem such as /proc?)",
              }.get(exc.errno, f"cannot be written to ({exc.strerror or exc})")
    return f"cannot write {path}: the folder {folder} {reason}; choose another output path."


def _remove_stale_parts(target: Path) -> None:
    """Remove part files of `target` left by writers that no longer run (their pid is gone)."""
    head, tail = f".{target.name}.", ".part"
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            if not (entry.name.startswith(head) and entry.name.endswith(tail)):
                continue
            pid, dash, tag = entry.name[len(head):-len(tail)].partition("-")
            if dash and pid.isdigit() and tag.isalnum() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (True where that cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it runs, as another user
        return True
    return True


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
