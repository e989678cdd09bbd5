"""Shared output options and renderers: rich tables for people, JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import click

__all__ = ["emit_json", "json_option", "print_rows", "to_jsonable"]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    """``--json``: print machine-readable JSON on stdout instead of a table."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (for scripts) instead of a table.")(f)


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


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
               max_rows: int = 200) -> None:
    """A rich table on a terminal (plain aligned text when piped)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        table.add_column(str(col), overflow="fold")
    for row in rows[:max_rows]:
        table.add_row(*["" if v is None else str(to_jsonable(v)) for v in row])
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"... {len(rows) - max_rows} more rows (use --format csv or --output)")
