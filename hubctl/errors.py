"""One error root for everything a user can get wrong; the CLI turns these into messages."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubctl.s3 import S3Root

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_REJECT_RATE",
    "EXIT_USAGE",
    "ConfigError",
    "DamagedTable",
    "DuplicateKeys",
    "HubError",
    "InputError",
    "LeaseLost",
    "LockHeld",
    "MachineError",
    "RejectRateExceeded",
    "SqlError",
    "Stopped",
    "UnknownTable",
    "UsageError",
    "damaged_table",
    "translate",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECT_RATE = 4
EXIT_LOCKED = 75


class HubError(Exception):
    """Base of every error hubctl reports to a user without a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(HubError):
    """The command line itself is wrong (bad option value, missing argument)."""

    exit_code = EXIT_USAGE


class ConfigError(HubError):
    """hub.toml or a source declaration is wrong."""

    exit_code = EXIT_USAGE


class InputError(HubError):
    """An input file cannot be used at all (missing, unreadable, not the expected format)."""

    def __init__(
        self, message: str, *, path: str | None = None, record: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path:
            where = f"{path}"
            if record:
                where += f", {record}"
            where += ": "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.record = record


class LockHeld(HubError):
    """Another process holds the lock of this source or of lake maintenance."""

    exit_code = EXIT_LOCKED


class LeaseLost(HubError):
    """A lease of a lake on object storage (:mod:`hubctl.lease`) is no longer this process's:
    it stalled past the lease and another process took it over, so it must not commit."""


class RejectRateExceeded(HubError):
    """The run finished but rejected more than --max-reject-rate of what it read."""

    exit_code = EXIT_REJECT_RATE


class SqlError(HubError):
    """A query failed in DuckDB; the message is DuckDB's, translated where we can help."""


class UnknownTable(SqlError):
    """A query or command named a table that the lake does not have."""


class DuplicateKeys(HubError):
    """A table holds more than one row for one key (written by an older hubctl or another
    tool); ``hubctl lake check --repair`` keeps the last write of each key."""

    def __init__(self, table: str, *, key: tuple[str, ...] = ("id", "observed_at"),
                 hint: str | None = None) -> None:
        super().__init__(
            f"table {table} holds more than one row for some keys ({', '.join(key)})",
            hint=hint or f"run `hubctl lake check {table}` to list them and `hubctl lake check "
                         f"{table} --repair` to keep the last write of each key")
        self.table = table


class Stopped(HubError):
    """A run asked to stop (SIGTERM) ended after its last commit; ``run`` is its ledger row."""

    def __init__(self, message: str, *, hint: str | None = None, run: object = None) -> None:
        super().__init__(message, hint=hint)
        self.run = run


class MachineError(HubError):
    """The machine refused (disk full, a read-only or unwritable lake, memory): not the
    user's input and not a bug. ``translate`` builds it from OS and engine errors."""


class DamagedTable(HubError):
    """A Delta table's transaction log cannot be read."""

    def __init__(self, table: str, message: str, *, hint: str) -> None:
        super().__init__(f"table {table}: {message}", hint=hint)
        self.table = table


# errno values and the texts Rust (deltalake, object_store) puts in its messages for them
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_SPACE_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded",
                  "os error 122", "File too large", "os error 27")
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_READ_ONLY_TEXT = ("Read-only file system", "os error 30", "Permission denied", "os error 13")


def translate(exc: BaseException, lake: str | None = None) -> HubError | None:
    """The HubError for an error that is the machine's or the input's, not a bug: disk full,
    a read-only lake, a damaged zip, input nested too deeply, memory. None for anything else
    (a bug, reported as an internal error). ``lake`` names the lake in the message."""
    text = f"{type(exc).__name__}: {exc}"
    code = exc.errno if isinstance(exc, OSError) else None
    where = _where(exc, lake)
    if code in _NO_SPACE or any(t in text for t in _NO_SPACE_TEXT):
        return MachineError(
            f"the disk is full: cannot write {where} ({_os_text(exc)})",
            hint="free space on that file system (or raise the quota / file size limit), "
                 "then run the command again; what was committed before stays in the lake "
                 "and a re-run writes no duplicates")
    if code in _READ_ONLY or any(t in text for t in _READ_ONLY_TEXT):
        return MachineError(
            f"cannot write {where}: {_os_text(exc)}",
            hint="the lake must be writable by this user: check --lake, HUBCTL_LAKE or "
                 "[lake] path in hub.toml, the folder's permissions and whether the file "
                 "system is mounted read-only")
    if isinstance(exc, RecursionError):
        return InputError("the input is nested too deeply to read (more levels than "
                          f"Python's recursion limit of {sys.getrecursionlimit():,})",
                          hint="such nesting is not real data; check where the file came from")
    if (type(exc).__name__, type(exc).__module__) in (("BadZipFile", "zipfile"),
                                                      ("error", "zlib")):
        return InputError(f"a zip file is damaged ({exc})",
                          hint="download or copy it again; `unzip -t FILE` tests it")
    if isinstance(exc, MemoryError):
        return MachineError("out of memory", hint="lower the batch size or the input size, or "
                                                  "run on a machine with more memory")
    return None


def _where(exc: BaseException, lake: str | None) -> str:
    filename = getattr(exc, "filename", None)
    if filename:
        return str(filename)
    return f"the lake {lake}" if lake else "the lake"


def _os_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    for text in _NO_SPACE_TEXT + _READ_ONLY_TEXT:
        if text in str(exc) and not text.startswith("os error"):
            return text
    return _first_line(exc)


def damaged_table(table: str, folder: Path | S3Root, exc: BaseException) -> DamagedTable:
    """The DamagedTable for a Delta table whose log cannot be read, naming the damaged log
    file when one of them is not JSON, and the way out."""
    log = folder / "_delta_log"
    commits = sorted(log.glob("*.json")) if isinstance(log, Path) else []
    cause = _first_line(exc)  # with RUST_BACKTRACE set, a backtrace follows
    bad = next((p for p in commits if not _json_lines(p)), None)
    if bad is not None and bad == commits[-1] and len(commits) > 1:
        return DamagedTable(
            table, f"its newest commit {bad} is damaged ({cause})",
            hint=f"move that file aside (`mv {bad} {bad}.damaged`): the table then reads as "
                 "its previous version; re-run the ingest that wrote the lost commit "
                 "(--force; it writes no duplicates)")
    found = f"{bad} is damaged" if bad is not None else "its transaction log cannot be read"
    return DamagedTable(
        table, f"{found} ({cause})",
        hint=f"restore {folder} from a backup, or move it aside and ingest its sources again")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _json_lines(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    json.loads(line)
    except (OSError, ValueError):
        return False
    return True
