"""Shared output options and renderers: rich tables for people, JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click

__all__ = ["JSON_PRINTED", "JSON_WANTED", "emit_failure", "emit_json", "json_option",
           "print_rows", "to_jsonable", "tsv", "wants_json"]

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


def emit_failure(error: BaseException, exit_code: int) -> None:
    """The JSON object of a command that failed before printing its own: status, error,
    hint and exit code. Printed at most once, and only when ``--json`` was given."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or not ctx.meta.get(JSON_WANTED) or ctx.meta.get(JSON_PRINTED):
        return
    message = getattr(error, "message", None) or getattr(error, "format_message", str)()
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
