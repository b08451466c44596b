"""Atomic writes: what `atomic_path` refuses, writes through, and cleans up after a crash."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import duet
from duet.atomic import atomic_write, check_writable
from duet.errors import DuetError, MediaError


def _write(path: Path | str, data: bytes = b"new") -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), MediaError)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_devices_fifos_and_folders_are_refused_and_left_alone(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "named pipe"), (Path("/dev/null"), "character device"),
                       (tmp_path, "folder")):
        for call in (_write, lambda p: check_writable(p, MediaError)):
            with pytest.raises(MediaError, match=kind):
                call(path)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.mp4"]


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "clip.mp4"
    target.write_bytes(b"old")
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    assert _write(link) == link
    assert link.is_symlink() and target.read_bytes() == b"new"
    dangling = tmp_path / "later.mp4"
    dangling.symlink_to(tmp_path / "real" / "later.mp4")
    _write(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "later.mp4").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["clip.mp4", "later.mp4"]


def test_part_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.mp4"
    killed = ("import os, signal, sys\nfrom duet.atomic import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(duet.__file__).parents[1])}
    run = subprocess.run([sys.executable, "-c", killed, str(target)], env=env)
    assert run.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.mp4.") and left.name.endswith(".part")
    live = tmp_path / f".out.mp4.{os.getppid()}-0123abcd.part"  # a writer that still runs
    live.write_bytes(b"busy")
    other = tmp_path / ".other.mp4.1-0123abcd.part"  # another file's: not ours to judge
    other.write_bytes(b"x")
    _write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.mp4"])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_an_unwritable_folder_is_named_with_the_real_cause():
    for call in (_write, lambda p: check_writable(p, MediaError)):
        with pytest.raises(MediaError) as e:
            call("/proc/out.mp4")
        assert "cannot write /proc/out.mp4" in str(e.value) and "/proc does not accept" in str(e.value)
        assert ".part" not in str(e.value) and "disk" not in str(e.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_without_write_permission_says_so(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DuetError, match="permission denied"):
        check_writable(locked / "out.mp4")
    with pytest.raises(DuetError, match="permission denied"):
        check_writable(locked / "new" / "out.mp4")
