"""The read-ahead thread keeps order, passes errors on at the right place, and stops early."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hubctl.prefetch import prefetch


def test_items_arrive_in_order() -> None:
    assert list(prefetch(iter(range(100)), ahead=3)) == list(range(100))


def test_an_error_in_the_producer_is_raised_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad input at item 3")

    got = []
    with pytest.raises(ValueError, match="item 3"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_stops_the_producer() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    for item in prefetch(items(), ahead=2):
        if item == 5:
            break
    assert len(produced) < 20
