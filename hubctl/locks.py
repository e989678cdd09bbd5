"""Locks between processes: one per source, one per input file, one for lake maintenance, and
one commit lock per table.

``flock`` on a file under ``<lake>/_locks/``: the kernel drops it when the process dies, so a
``kill -9`` never leaves a stale lock. :func:`hold` is non-blocking: a second holder fails at
once with exit code 75 ("skipped, locked"). :func:`table_commit` waits its turn instead: it
serialises the few milliseconds to seconds in which a writer classifies rows against a table
and commits the result.

A lake on object storage (``s3://``), shared by several machines, holds the same locks as
leases (:mod:`hubctl.lease`): objects under ``_locks/`` written with conditional puts, renewed
while held, and taken over once a dead holder's lease has expired. A holder that stalled past
its lease may have lost it without knowing: :func:`fence` gives the leases a thread holds, which
the lake checks before each commit and names in it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hubctl.errors import LockHeld
from hubctl.s3 import S3Root

if TYPE_CHECKING:
    from hubctl.lease import Fence, Lease

__all__ = ["COMMIT_TIMEOUT", "MAINTENANCE", "fence", "file_key", "hold", "table_commit"]

MAINTENANCE = "lake-maintenance"
#: Seconds a writer waits for a table's commit lock before giving up (exit 75).
COMMIT_TIMEOUT = 600.0


def _lock_name(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    return f"{slug}-{digest}"


def _lock_path(root: Path, name: str) -> Path:
    return root / "_locks" / f"{_lock_name(name)}.lock"


def _lease(root: S3Root, name: str) -> Lease:
    from hubctl.lease import Lease

    return Lease(root / "_locks" / f"{_lock_name(name)}.lease", name=name)


_held = threading.local()  # .leases: the leases this thread holds, oldest first


def _leases() -> list[Lease]:
    if not hasattr(_held, "leases"):
        _held.leases = []
    leases: list[Lease] = _held.leases
    return leases


@contextmanager
def _holding(lease: Lease) -> Iterator[None]:
    """Count ``lease`` among this thread's for the ``with`` block, then release it."""
    _leases().append(lease)
    try:
        yield
    finally:
        _leases().remove(lease)
        lease.release()


def fence(root: Path | S3Root) -> Fence | None:
    """What a commit to a table of the lake ``root`` made now, in this thread, must check
    and carry (:class:`hubctl.lease.Fence`): every lease of that lake the thread holds (its
    source's, its input files', the table's commit lease, maintenance's, a pipeline's). None
    on a local lake (``flock`` is never lost) or without one."""
    if not isinstance(root, S3Root):
        return None
    locks = root / "_locks"
    leases = [lease for lease in _leases() if lease.path.parent == locks]
    if not leases:
        return None
    from hubctl.lease import Fence

    return Fence(leases)


def _expiry_hint() -> str:
    from hubctl.lease import lease_seconds

    return (f"; the lease of a machine that died expires {lease_seconds():g} s after its last "
            "renewal (HUBCTL_LEASE_SECONDS)")


def _open(root: Path, name: str) -> int:
    path = _lock_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _holder(fd: int) -> str:
    return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"


def _mark(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)


@contextmanager
def hold(root: Path | S3Root, name: str) -> Iterator[Path | S3Root]:
    """Hold the lock called ``name`` in lake ``root`` for the ``with`` block, or raise LockHeld."""
    if isinstance(root, S3Root):
        lease = _lease(root, name)
        if not lease.acquire():
            raise LockHeld(f"{name!r} is locked by {lease.holder}",
                           hint="another run of this source, pipeline or export is in "
                                "progress; try again later (exit code 75 means 'skipped, "
                                "locked')" + _expiry_hint())
        with _holding(lease):
            yield lease.path
        return
    fd = _open(root, name)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"{name!r} is locked by {_holder(fd)}",
                           hint="another run of this source, pipeline or export is in "
                                "progress; try again later (exit code 75 means 'skipped, "
                                "locked')") from None
        _mark(fd)
        yield _lock_path(root, name)
    finally:
        os.close(fd)


def file_key(path: Path) -> str:
    """The lock name of an input file or folder: its identity (device and inode), so that the
    same file reached through another path, a symbolic or a hard link is the same lock. The
    host is part of it: on a lake shared by several machines (S3), the same device and inode
    on two machines are two files."""
    st = os.stat(path)
    return f"input:{os.uname().nodename}:{st.st_dev}:{st.st_ino}"


@contextmanager
def table_commit(root: Path | S3Root, table: str, timeout: float = COMMIT_TIMEOUT
                 ) -> Iterator[None]:
    """Hold table ``table``'s commit lock for the ``with`` block, waiting up to ``timeout``
    seconds for it (then LockHeld, exit 75).

    This is the one interface behind which hubctl makes "the rows a writer classified against
    (new / updated / duplicate) are the rows it commits over": every upsert reads the table's
    newest version and commits inside this block, so no interleaving of writers, in any number
    of processes, can append one key twice, and every run's counts are true. On a local lake it
    is a blocking ``flock`` on ``<lake>/_locks/commit-<table>…``, released by the kernel when the
    holder dies. A lake on object storage, shared by several machines, backs this same call
    with a lease object in the lake (:class:`hubctl.lease.Lease`: a conditional put of
    ``_locks/commit_<table>….lease`` carrying an owner and an expiry, renewed while held); the
    lake checks it, with the thread's other leases, before classifying and committing
    (:func:`fence`), so a holder that stalled past it and was taken over commits nothing.
    """
    if isinstance(root, S3Root):
        with _waiting_lease(root, table, timeout):
            yield
        return
    fd = _open(root, f"commit:{table}")
    try:
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"table {table} has been locked for commits by {_holder(fd)} for more "
                        f"than {timeout:g} s", hint="another writer is committing a large "
                        "batch or is stuck; check it, then try again") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        _mark(fd)
        yield
    finally:
        os.close(fd)


@contextmanager
def _waiting_lease(root: S3Root, table: str, timeout: float) -> Iterator[None]:
    """:func:`table_commit` on object storage: take the table's commit lease, polling."""
    lease = _lease(root, f"commit:{table}")
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not lease.acquire():
        if time.monotonic() >= deadline:
            raise LockHeld(f"table {table} has been locked for commits by {lease.holder} for "
                           f"more than {timeout:g} s", hint="another writer is committing a "
                           "large batch or is stuck; check it, then try again" + _expiry_hint())
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    with _holding(lease):
        yield
