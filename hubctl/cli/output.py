"""Shared output options and renderers: rich tables for people, JSON for machines."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from hubctl.errors import HubError

__all__ = ["JSON_PRINTED", "JSON_WANTED", "GuardedStdout", "OutputError", "emit_failure",
           "emit_json", "json_option", "output_file", "print_rows", "to_jsonable", "tsv",
           "wants_json"]

F = TypeVar("F", bound=Callable[..., Any])

#: ``click.Context.meta`` keys (shared by every context of one invocation): --json was given;
#: the command printed its JSON on stdout.
JSON_WANTED = "hubctl.json"
JSON_PRINTED = "hubctl.json_printed"


def json_option(f: F) -> F:
    """``--json``: print machine-readable JSON on stdout instead of a table, on failure too
    (the CLI prints ``{"status": "failed", "error": ..., "exit_code": ...}`` when the command
    printed nothing itself)."""
    return click.option("--json", "as_json", is_flag=True, callback=wants_json,
                        help="Print JSON (for scripts) instead of a table; on failure too.")(f)


def wants_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Callback of a ``--json`` flag: remember it, so that a failure is printed as JSON too."""
    if value:
        ctx.meta[JSON_WANTED] = True
    return value


class OutputError(HubError):
    """Standard output could not be written (a redirect to a full disk, a closed terminal):
    the command's own work is done; only what it printed is missing."""


class GuardedStdout:
    """``sys.stdout`` of hubctl's own process. A write or flush that fails with an OSError
    (ENOSPC behind ``> file``, EIO) raises OutputError, which says so, instead of a traceback
    or a message that blames the lake; standard output then goes to /dev/null, so that what
    is still buffered cannot fail again at exit. A closed pipe (``| head``) stays a
    BrokenPipeError, which the CLI ends quietly."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` (see the class)."""
        if isinstance(text, str) and not text:  # click probes the stream with empty
            return 0  # writes (b'' must still fail as a text stream's would)
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        """Flush (see the class)."""
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> OutputError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass
        return OutputError(
            f"cannot write the output to standard output: {exc.strerror or exc}",
            hint="free space where it goes (a redirect to a full disk?) or send it elsewhere; "
                 "the command's work itself is done (an ingest is in the ledger: hubctl sql "
                 "\"select * from _runs order by started_at desc limit 1\")")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def output_file(path: Path) -> Iterator[None]:
    """Around writing ``path``, a file the user named (``--output``): a failure to write it (a
    full disk, a folder that does not exist, no permission) is an OutputError naming it, not
    a message about the lake."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="give --output a path in a folder that exists, that you may "
                               "write, on a disk with free space") from None


def emit_failure(error: BaseException, exit_code: int) -> None:
    """The JSON object of a command that failed before printing its own: status, error,
    hint and exit code. Printed at most once, and only when ``--json`` was given (not when
    standard output itself failed)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.meta.get(JSON_WANTED) or ctx.meta.get(JSON_PRINTED) \
            or isinstance(error, OutputError):
        return
    message = getattr(error, "message", None) or getattr(error, "format_message", str)()
    with contextlib.suppress(OutputError):  # the failure itself is said on stderr
        emit_json({"status": "failed", "error": message, "hint": getattr(error, "hint", None),
                   "exit_code": exit_code})


def to_jsonable(value: Any) -> Any:
    """Values as JSON can carry them (timestamps as ISO 8601)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # shared by every context of the invocation
        ctx.meta[JSON_PRINTED] = True


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
               max_rows: int = 200) -> None:
    """A rich table on a terminal; plain TSV (a header line, then one line per row, every row)
    when stdout is not a terminal, for ``cut``, ``sort`` and spreadsheets."""
    if not sys.stdout.isatty():
        click.echo(tsv(columns, rows), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows[:max_rows]:
        table.add_row(*["" if v is None else str(to_jsonable(v)) for v in row])
    console = Console()
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"... {len(rows) - max_rows} more rows (use --format csv or --output)")


def tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as tab-separated text with a header line; tabs and line breaks in a value become
    spaces, a missing value is empty."""
    def cell(v: Any) -> str:
        text = "" if v is None else str(to_jsonable(v))
        return text.replace("\t", " ").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")

    return "".join("\t".join(cell(v) for v in r) + "\n" for r in [list(columns), *rows])
