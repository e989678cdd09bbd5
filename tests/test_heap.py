"""hubctl.heap.retained: large blocks come from glibc's heap inside, from mmap outside."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from hubctl.heap import _glibc, retained


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mmapped_bytes() -> int:
    libc = _glibc()
    assert libc is not None
    libc.mallinfo2.restype = _Mallinfo2
    return int(libc.mallinfo2().hblkhd)


@pytest.mark.skipif(_glibc() is None, reason="glibc only (elsewhere retained() does nothing)")
def test_a_64_mb_array_is_served_from_the_heap_only_inside() -> None:
    size = 64 * 2**20
    before = _mmapped_bytes()
    outside = np.ones(size // 8)
    assert _mmapped_bytes() - before >= size  # glibc's own mmap for a block over 32 MiB
    del outside
    with retained():
        before = _mmapped_bytes()
        inside = np.ones(size // 8)
        assert _mmapped_bytes() - before < size
        assert float(inside.sum()) == size // 8
        del inside
    before = _mmapped_bytes()
    after = np.ones(size // 8)  # the defaults are back
    assert _mmapped_bytes() - before >= size
    del after
