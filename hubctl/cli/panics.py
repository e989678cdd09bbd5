"""Keep Rust panic reports off the user's terminal.

deltalake (Rust, through pyo3) prints a panic report on file descriptor 2 from its own
threads, e.g. ``thread 'tokio-rt-worker' panicked at ...: Already shut down`` and a stack
backtrace when a disk fills up mid-write. Python cannot catch that text, so the console script
runs with fd 2 behind a pipe whose reader forwards every line except such reports. The error
that follows is reported by the CLI as a message (:func:`hubctl.errors.translate`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["PanicFilter", "quiet_rust_panics", "unfiltered"]

_START = re.compile(rb"^thread '[^']*'(?: \(\d+\))? panicked at ")
_END = re.compile(rb"^note: .*RUST_BACKTRACE")  # or a blank line: the report's end
_OURS = re.compile(rb"^(error|warning|  hint): ")
_MAX_LINES = 50  # a report without a backtrace is a few lines; after that, forward again
_PREFIX = b"thread '"


class PanicFilter:
    """Line filter: drops Rust panic reports, passes everything else."""

    def __init__(self) -> None:
        self.dropping = 0  # lines dropped in the current report; 0 when forwarding
        self.panics = 0
        self._after = False  # a report just ended: the blank lines around it go too

    def keep(self, line: bytes, at_start: bool = True) -> bool:
        """Whether ``line`` (with its line break) is shown; ``at_start`` is False for the
        rest of a line whose beginning was already forwarded."""
        if not at_start and not self.dropping:
            return True
        if self._after and not line.strip():
            return False
        self._after = False
        if self.dropping:
            self.dropping += 1
            if _OURS.match(line):  # the message the CLI prints after the panic
                self.dropping = 0
                return True
            if _START.match(line):
                self.panics += 1
                self.dropping = 1
            elif _END.match(line) or not line.strip() or self.dropping > _MAX_LINES:
                self.dropping, self._after = 0, True
            return False
        if _START.match(line):
            self.panics += 1
            self.dropping = 1
            return False
        return True


@contextmanager
def quiet_rust_panics(enabled: bool = True) -> Iterator[PanicFilter]:
    """Run the body with stderr (fd 2) filtered through :class:`PanicFilter`. A terminal
    stays a terminal (a pseudo-terminal of the same size), so progress bars still show."""
    flt = PanicFilter()
    if not enabled or os.environ.get("HUBCTL_RAW_STDERR"):
        yield flt
        return
    os.environ["RUST_BACKTRACE"] = "0"  # no costly backtrace capture either
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = _channel(saved)
    except OSError:  # no descriptors or terminals to spare: run unfiltered
        yield flt
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved, flt), daemon=True,
                            name="stderr-filter")
    pump.start()
    _FILTERING.append((saved, pump))
    try:
        yield flt
    finally:
        unfiltered()
        os.close(saved)


_FILTERING: list[tuple[int, threading.Thread]] = []  # (the real stderr, its pump) while filtered


def unfiltered(timeout: float = 5.0) -> None:
    """Give fd 2 back to the real stderr, once what the filter holds is forwarded (up to
    ``timeout`` seconds): at the end of :func:`quiet_rust_panics`, or before a process ends at
    once (``os._exit``), whose last words would otherwise die in the pipe. Nothing when
    stderr is not filtered."""
    if not _FILTERING:
        return
    saved, pump = _FILTERING.pop()
    with suppress(OSError, ValueError, RuntimeError):  # (a flush a signal cut short)
        sys.stderr.flush()
    os.dup2(saved, 2)  # the channel's last writer closes: the pump sees its end
    pump.join(timeout=timeout)


def _channel(real: int) -> tuple[int, int]:
    """(read end, write end): a pseudo-terminal when stderr is a terminal, else a pipe."""
    if not os.isatty(real):
        return os.pipe()
    import fcntl
    import termios
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)  # no line-ending translation: bytes pass as written
    with suppress(OSError):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(real, termios.TIOCGWINSZ, b"\0" * 8))
    return master, slave


def _pump(read_end: int, out: int, flt: PanicFilter) -> None:
    """Forward what comes in, line by line through the filter; a partial line (a progress
    bar redrawn with a carriage return) is forwarded at once unless it may start a report."""
    pending = b""
    at_start = True
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:  # a pseudo-terminal whose writers are gone
            chunk = b""
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        shown = []
        for line in lines:
            if flt.keep(line + b"\n", at_start):
                shown.append(line + b"\n")
            at_start = True
        if pending and not flt.dropping:
            may_start = at_start and (pending.startswith(_PREFIX) or _PREFIX.startswith(pending))
            if not may_start:
                shown.append(pending)
                pending, at_start = b"", False
        if shown:
            _write_all(out, b"".join(shown))
    if pending and flt.keep(pending, at_start):
        _write_all(out, pending)
    os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
