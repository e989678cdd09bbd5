"""One error root for everything a user can get wrong; the CLI turns these into messages."""

from __future__ import annotations

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_REJECT_RATE",
    "EXIT_USAGE",
    "ConfigError",
    "DuplicateKeys",
    "HubError",
    "InputError",
    "LockHeld",
    "RejectRateExceeded",
    "SqlError",
    "Stopped",
    "UnknownTable",
    "UsageError",
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

    def __init__(self, table: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"table {table} holds more than one row for some keys (id, observed_at)",
            hint=hint or f"run `hubctl lake check {table}` to list them and `hubctl lake check "
                         f"{table} --repair` to keep the last write of each key")
        self.table = table


class Stopped(HubError):
    """A run asked to stop (SIGTERM) ended after its last commit; ``run`` is its ledger row."""

    def __init__(self, message: str, *, hint: str | None = None, run: object = None) -> None:
        super().__init__(message, hint=hint)
        self.run = run
