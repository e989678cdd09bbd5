"""Keeping freed memory in the process while a pipeline runs.

glibc serves every allocation above 32 MiB (a column of 4.4 M doubles is 35 MB) with its own
``mmap`` and returns it with ``munmap`` when freed, so a numpy pass that makes a temporary of
that size pays for fresh pages each time: the kernel zeroes them on first touch. On the 4.4 M
station-hour air-quality lake this was about half of the indices step's CPU time, in system
time. :func:`retained` makes glibc serve such blocks from its heap and keep what is freed there
for the next array; on leaving, it restores glibc's default limits (its sliding mmap threshold
stays off for the rest of the process) and gives the unused heap back (``malloc_trim``).
Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["retained"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)
_DEFAULT_TRIM, _DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
_KEEP = 2**31 - 1  # bytes of free heap glibc may keep before trimming (the int maximum)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def retained() -> Iterator[None]:
    """Inside: large blocks come from the heap and freed memory stays there for reuse."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
        libc.malloc_trim(0)
