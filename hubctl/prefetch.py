"""Read ahead: run a generator in a background thread, a bounded number of items ahead.

The ingest engine reads and converts the next batch (pyarrow, numpy: the GIL is released)
while the current one is validated and committed (DuckDB, delta-rs), so both cores work.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], ahead: int = 1,
             name: str = "hubctl-prefetch") -> Generator[T, None, None]:
    """Yield the items of ``items``, produced ``ahead`` items in advance by another thread
    (named ``name``).

    An exception in the producer is raised in the consumer at the same point of the sequence;
    if the consumer stops early, the producer stops at its next item.
    """
    slots: queue.Queue[object] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
        except BaseException as exc:  # handed to the consumer
            slots.put(_Failure(exc))
        else:
            slots.put(_DONE)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.05)
        worker.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
