"""Locks between processes: one per source, one for lake maintenance.

``flock`` on a file under ``<lake>/_locks/``: the kernel drops it when the process dies, so a
``kill -9`` never leaves a stale lock. A second holder fails at once with exit code 75.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubctl.errors import LockHeld

__all__ = ["MAINTENANCE", "hold"]

MAINTENANCE = "lake-maintenance"


def _lock_path(root: Path, name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    return root / "_locks" / f"{slug}-{digest}.lock"


@contextmanager
def hold(root: Path, name: str) -> Iterator[Path]:
    """Hold the lock called ``name`` in lake ``root`` for the ``with`` block, or raise LockHeld."""
    path = _lock_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise LockHeld(f"{name!r} is locked by {holder}",
                           hint="another run of this source is in progress; try again later "
                                "(exit code 75 means 'skipped, locked')") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield path
    finally:
        os.close(fd)
