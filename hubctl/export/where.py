"""``--where``: a user's SQL condition, checked before it reaches the trusted connection.

Export reads the lake on the engine's trusted DuckDB connection (it writes files), so a filter
must not be a way in. The condition is parsed by DuckDB itself (``json_serialize_sql`` of
``SELECT * FROM t WHERE (<condition>)``) and accepted only when the parse is exactly one plain
SELECT of that shape whose condition tree holds nothing but column references to the published
columns, constants, comparisons, AND/OR/NOT, arithmetic, IN lists, BETWEEN, CASE, casts and
functions from a short list of pure scalar functions. Subqueries, table functions
(``read_csv``), ``COPY``, ``ATTACH``, settings, unknown functions and a second statement are
refused with a message that names what was found.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from hubctl.duck import scratch
from hubctl.errors import UsageError

__all__ = ["ALLOWED_FUNCTIONS", "check_where"]

_PLACEHOLDER = "__hubctl_export_table"
_CLASSES = {"CONJUNCTION", "COMPARISON", "OPERATOR", "CONSTANT", "COLUMN_REF", "BETWEEN",
            "CASE", "CAST", "FUNCTION", "TYPE"}
#: Pure scalar functions a filter may call (DuckDB names; operators such as ``+`` and ``~~``
#: for LIKE are functions in DuckDB's parse tree).
ALLOWED_FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "~~", "!~~", "~~*", "!~~*", "||", "abs", "round", "floor",
    "ceil", "lower", "upper", "length", "trim", "substr", "substring", "starts_with",
    "ends_with", "contains", "prefix", "suffix", "regexp_matches", "coalesce", "date_part",
    "date_trunc", "extract", "year", "month", "day", "hour", "minute", "dayofweek", "isodow",
    "epoch", "least", "greatest", "strftime", "concat", "nullif", "ifnull", "like_escape",
    "list_contains", "array_contains", "len",
})


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every expression node (a dict with a ``class``) under ``tree``."""
    if isinstance(tree, dict):
        if "class" in tree:
            yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def _parse(condition: str) -> dict[str, Any]:
    con = scratch()
    try:
        text = con.execute("SELECT json_serialize_sql(?)",
                           [f"SELECT * FROM {_PLACEHOLDER} WHERE ({condition})"]).fetchall()[0]

    finally:
        con.close()
    parsed = json.loads(text[0]) if text else {"error": True}
    if parsed.get("error"):
        raise UsageError(f"--where {condition!r} is not a SQL condition: "
                         f"{parsed.get('error_message', 'it does not parse')}",
                         hint="e.g. --where \"no2 > 40 AND id LIKE '%BETR%'\"")
    return parsed


def check_where(condition: str, columns: Iterable[str], table: str) -> str:
    """``condition`` if it is a safe filter over ``columns``; UsageError naming the problem."""
    if not condition.strip():
        raise UsageError("--where is empty", hint="e.g. --where \"no2 > 40\"")
    parsed = _parse(condition)
    statements = parsed.get("statements", [])
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    source = node.get("from_table", {})
    if (len(statements) != 1 or node.get("type") != "SELECT_NODE" or node.get("modifiers")
            or node.get("cte_map", {}).get("map") or node.get("group_expressions")
            or node.get("having") or source.get("type") != "BASE_TABLE"
            or source.get("table_name") != _PLACEHOLDER or node.get("where_clause") is None):
        raise UsageError(f"--where {condition!r} must be one condition, not a statement",
                         hint="write only what follows WHERE, e.g. --where \"no2 > 40\"")
    known = set(columns)
    for expr in _nodes(node["where_clause"]):
        kind = expr["class"]
        if kind not in _CLASSES:
            raise UsageError(f"--where may not contain a {kind.lower()} ({condition!r})",
                             hint="use columns, constants, comparisons and simple functions")
        if kind == "COLUMN_REF":
            names = expr.get("column_names", [])
            if len(names) != 1 or names[0] not in known:
                raise UsageError(f"--where: {'.'.join(names)!r} is not a column of {table}",
                                 hint=f"its published columns: {', '.join(sorted(known))}")
        if kind == "TYPE" and (expr.get("schema") or expr.get("catalog")):
            raise UsageError(f"--where may only cast to built-in types ({condition!r})")
        if kind == "FUNCTION":
            name = str(expr.get("function_name", "")).lower()
            if name not in ALLOWED_FUNCTIONS or expr.get("schema") or expr.get("catalog"):
                raise UsageError(f"--where may not call {name}() ({condition!r})",
                                 hint="allowed functions: " + ", ".join(
                                     sorted(f for f in ALLOWED_FUNCTIONS if f.isalpha())))
    return condition
