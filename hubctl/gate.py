"""The quality gate: a schema compiled into vectorised checks, and the jsonschema path.

Both paths read the same JSON Schema. :func:`validate_entity` runs ``jsonschema`` on one
NGSI-LD entity (normalized form); :class:`Gate` runs the same constraints (type, required,
minimum/maximum, enum, pattern, minLength, coordinate bounds) over whole Arrow tables, so bulk
input costs no Python loop per row: Python only touches the rows that fail.
A test proves both paths reject the same records with the same codes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.ngsild import parse_time
from hubctl.registry import Attribute, EntityType
from hubctl.rejects import Reason, reason

__all__ = ["ID_MAX_CHARS", "Gate", "RowReasons", "coordinate_reason", "gate_for", "id_reason",
           "number_fits", "pattern_matches", "validate_entity"]

RowReasons = dict[int, list[Reason]]
_NUMERIC = ("float64", "int64", "point")

# Entity ids: longer than this, or holding a control character (NUL, line breaks, ...), they
# are rejected as data (code bad-id), on both paths. 1,024 characters leaves room for GTFS
# stop-time ids and percent-encoded Korean names; see docs/limits.md.
ID_MAX_CHARS = 1024
_CONTROL = "[\\x00-\\x1f\\x7f]"  # RE2, as the vectorised path matches it


def number_fits(kind: str, value: Any) -> bool:
    """Whether a JSON number can be stored in a column of ``kind`` (finite, in range).

    NaN and Infinity (which Python's json accepts) and integers too big for the column are
    type errors on both paths.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "int64":
        whole = isinstance(value, int) or (math.isfinite(value) and value.is_integer())
        return whole and -(2**63) <= value < 2**63
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` with RE2, the regex engine of the vectorised path.

    Both paths use it, so that ``$`` before a trailing newline or ``\\S`` on non-ASCII spaces
    mean the same thing on each.
    """
    return bool(pc.match_substring_regex(pa.array([text], pa.string()), pattern)[0].as_py())


def id_reason(value: Any) -> Reason | None:
    """Why an entity id is refused as data (a control character, or too long), or None."""
    if not isinstance(value, str):
        return None
    for i, ch in enumerate(value):
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return reason("bad-id", "id", detail=f"holds the control character U+{ord(ch):04X} "
                                                 f"at position {i + 1}")
    if len(value) > ID_MAX_CHARS:
        return reason("bad-id", "id", detail=f"is {len(value):,} characters long, more than "
                                             f"the limit of {ID_MAX_CHARS:,}")
    return None


def coordinate_reason(field: str, lon: Any, lat: Any) -> Reason | None:
    """The reason a lon/lat pair is not a WGS84 position, or None if it is one."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        return reason("type-error", field, value=[lon, lat], expected="pair of numbers")
    if -180 <= x <= 180 and -90 <= y <= 90:
        return None
    if -90 <= x <= 90 and -180 <= y <= 180:
        return reason("swapped-coordinates", field, lon=x, lat=y)
    return reason("coordinates-out-of-range", field, lon=x, lat=y)


# ---------------------------------------------------------------- jsonschema path

def _re2_pattern(validator: Any, pattern: str, instance: Any,
                 schema: dict[str, Any]) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not pattern_matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _validator(et: EntityType) -> Any:
    """The jsonschema validator of ``et`` (jsonschema is imported only for this path: the
    vectorised path, every bulk ingest, never needs it)."""
    from jsonschema import Draft202012Validator, FormatChecker, validators

    formats = FormatChecker(formats=())
    # A date-time is what the vectorised path can parse (naive text counts as UTC there).
    formats.checks("date-time")(lambda v: not isinstance(v, str) or parse_time(v) is not None)
    kind = validators.extend(Draft202012Validator, {"pattern": _re2_pattern})
    return kind(et.schema, format_checker=formats)


def _point_reason(field: str, coords: Any) -> Reason | None:
    """Why GeoJSON Point coordinates fail: not two or three numbers, or not WGS84."""
    if not isinstance(coords, list) or len(coords) not in (2, 3) or not all(
            number_fits("point", c) for c in coords[:2]):
        return reason("type-error", field, value=coords, expected="pair of numbers")
    return coordinate_reason(field, coords[0], coords[1])


def _non_finite(entity: dict[str, Any], et: EntityType) -> list[Reason]:
    """Type errors for numbers the lake cannot hold (NaN, Infinity, too big), as build_table."""
    out = []
    for name, attr in et.attributes.items():
        obj = entity.get(name)
        if attr.column.name not in _NUMERIC or not isinstance(obj, dict):
            continue
        value = obj.get("value")
        if attr.is_point:
            coords = value.get("coordinates") if isinstance(value, dict) else None
            values = coords[:2] if isinstance(coords, list) else []
        else:
            values = [value]
        if any(isinstance(v, int | float) and not isinstance(v, bool)
               and not number_fits(attr.column.name, v) for v in values):
            out.append(reason("type-error", name, value=value, expected="finite number"))
    return out


def _field_of(error: Any) -> str:
    path = list(error.absolute_path)
    return str(path[0]) if path else ""


def _map_error(error: Any, entity: dict[str, Any], et: EntityType) -> Reason:
    field = _field_of(error)
    kw = error.validator
    attr = et.attributes.get(field)
    value = error.instance
    if kw == "required":
        missing = [r for r in error.validator_value if r not in (error.instance or {})]
        name = missing[0] if missing else ""
        return reason("missing-required", f"{field}.{name}" if field else name)
    if attr is not None and attr.is_point and list(error.absolute_path)[1:2] == ["value"]:
        geo = entity.get(field, {}).get("value")
        coords = geo.get("coordinates") if isinstance(geo, dict) else geo
        return _point_reason(field, coords) or reason(
            "constraint-error", field, detail=error.message)
    if attr is not None and attr.column.name == "timestamp" and kw in ("type", "pattern", "format"):
        return reason("bad-timestamp", field, value=value)
    if kw == "format":
        return reason("bad-timestamp", field, value=value)
    if kw == "type":
        return reason("type-error", field, value=value, expected=error.validator_value)
    if kw in ("minimum", "exclusiveMinimum"):
        return reason("below-minimum", field, value=value, limit=error.validator_value)
    if kw in ("maximum", "exclusiveMaximum"):
        return reason("above-maximum", field, value=value, limit=error.validator_value)
    if kw in ("enum", "const"):
        allowed = error.validator_value if kw == "enum" else [error.validator_value]
        return reason("enum-error", field, value=value, allowed=allowed)
    if kw == "pattern":
        return reason("pattern-error", field, value=value, pattern=error.validator_value)
    return reason("constraint-error", field, detail=error.message)


def validate_entity(entity: dict[str, Any], et: EntityType) -> list[Reason]:
    """Every problem of one normalized entity, per field: a type error hides the others."""
    found = _non_finite(entity, et)
    bad_id = id_reason(entity.get("id"))
    if bad_id is not None:
        found.append(bad_id)
    for error in _validator(et).iter_errors(entity):
        if error.validator == "required":  # one error per missing name: report each
            where = _field_of(error)
            found += [reason("missing-required", f"{where}.{name}" if where else name)
                      for name in error.validator_value if name not in (error.instance or {})]
        else:
            found.append(_map_error(error, entity, et))
    typed = {r.field for r in found if r.code in ("type-error", "bad-timestamp")}
    out: list[Reason] = []
    seen: set[tuple[str, str]] = set()
    for r in found:
        if r.field in typed and r.code not in ("type-error", "bad-timestamp"):
            continue
        if (r.field, r.code) not in seen:
            seen.add((r.field, r.code))
            out.append(r)
    return out


# ---------------------------------------------------------------- vectorised path

@dataclass(frozen=True)
class _Check:
    column: str
    code: str
    limit: Any = None


def _compile(attr: Attribute) -> list[_Check]:
    vs = attr.value_schema
    col = attr.name
    checks: list[_Check] = []
    if "minimum" in vs:
        checks.append(_Check(col, "below-minimum", vs["minimum"]))
    if "maximum" in vs:
        checks.append(_Check(col, "above-maximum", vs["maximum"]))
    if "enum" in vs:
        checks.append(_Check(col, "enum-error", tuple(vs["enum"])))
    if "pattern" in vs and attr.column.name in ("string", "urn"):
        checks.append(_Check(col, "pattern-error", vs["pattern"]))
    if "minLength" in vs:
        checks.append(_Check(col, "constraint-error", vs["minLength"]))
    return checks


def _bad_mask(arr: pa.Array | pa.ChunkedArray, check: _Check) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray) and pa.types.is_dictionary(arr.type):
        arr = arr.combine_chunks()  # one dictionary for all chunks
    if pa.types.is_dictionary(arr.type):  # each distinct text checked once
        return pc.take(_bad_mask(arr.dictionary, check), arr.indices)
    if check.code == "below-minimum":
        return pc.less(arr, check.limit)
    if check.code == "above-maximum":
        return pc.greater(arr, check.limit)
    if check.code == "enum-error":  # a null is missing, not outside the enum
        return pc.and_(pc.is_valid(arr), pc.invert(pc.is_in(arr, value_set=pa.array(check.limit))))
    if check.code == "pattern-error":
        return pc.invert(pc.match_substring_regex(arr, check.limit))
    return pc.less(pc.utf8_length(arr), check.limit)  # minLength


def _message(check: _Check, value: Any) -> Reason:
    if check.code == "enum-error":
        return reason(check.code, check.column, value=value, allowed=list(check.limit))
    if check.code == "pattern-error":
        return reason(check.code, check.column, value=value, pattern=check.limit)
    if check.code == "constraint-error":
        return reason(check.code, check.column, detail=f"shorter than {check.limit} characters")
    return reason(check.code, check.column, value=value, limit=check.limit)


class Gate:
    """The schema of one entity type, compiled into vectorised checks."""

    def __init__(self, et: EntityType) -> None:
        self.et = et
        self.checks = [c for a in et.attributes.values() for c in _compile(a)]
        self.id_pattern = et.schema["properties"]["id"].get("pattern")

    def check(self, table: pa.Table, typed_bad: RowReasons | None = None) -> RowReasons:
        """Reasons per row index for every row of ``table`` (lake-row form) that fails.

        ``typed_bad`` are type errors found while building the typed columns; a field with a
        type error is not checked again (its cell is null).
        """
        out: RowReasons = defaultdict(list)
        type_fields: dict[str, set[int]] = defaultdict(set)
        for row, reasons in (typed_bad or {}).items():
            out[row].extend(reasons)
            for r in reasons:
                type_fields[r.field].add(row)
        self._check_id(table, out, type_fields)
        self._check_required(table, out, type_fields)
        for check in self.checks:
            if check.column not in table.column_names:
                continue
            arr = table.column(check.column)
            bad = _bad_mask(arr, check)
            for i in _true_indices(bad):
                out[i].append(_message(check, arr[i].as_py()))
        self._check_point(table, out, type_fields)
        return dict(out)

    def check_column(self, name: str, values: pa.Array) -> list[tuple[int, Reason]]:
        """Value checks of attribute ``name`` (minimum, maximum, enum, ...) on one array."""
        out: list[tuple[int, Reason]] = []
        for check in self.checks:
            if check.column == name:
                out += [(i, _message(check, values[i].as_py()))
                        for i in _true_indices(_bad_mask(values, check))]
        return out

    def _check_id(self, table: pa.Table, out: RowReasons,
                  type_fields: dict[str, set[int]]) -> None:
        ids = table.column("id")
        for i in _true_indices(pc.is_null(ids)):
            if i not in type_fields.get("id", ()):
                out[i].append(reason("missing-required", "id"))
        for i in _true_indices(_bad_ids(ids)):
            found = id_reason(ids[i].as_py())
            if found is not None:
                out[i].append(found)
        if self.id_pattern:
            for i in _true_indices(_mismatches(ids, self.id_pattern)):
                out[i].append(reason("pattern-error", "id", value=ids[i].as_py(),
                                     pattern=self.id_pattern))

    def _check_required(self, table: pa.Table, out: RowReasons,
                        type_fields: dict[str, set[int]]) -> None:
        for name in self.et.required:
            attr = self.et.attributes[name]
            cols = ["lon", "lat"] if attr.is_point else [name]
            if any(c not in table.column_names for c in cols):
                missing: Any = range(table.num_rows)
            else:  # a Point is missing when both halves are; one half alone is a type error
                nulls = [pc.is_null(table.column(c)) for c in cols]
                missing = _true_indices(nulls[0] if len(nulls) == 1 else pc.and_(*nulls))
            for i in missing:
                if i not in type_fields.get(name, ()):
                    out[i].append(reason("missing-required", name))

    def _check_point(self, table: pa.Table, out: RowReasons,
                     type_fields: dict[str, set[int]]) -> None:
        point = self.et.point
        if point is None or "lon" not in table.column_names:
            return
        lon, lat = table.column("lon"), table.column("lat")
        inside = pc.and_(
            pc.and_(pc.greater_equal(lon, -180), pc.less_equal(lon, 180)),
            pc.and_(pc.greater_equal(lat, -90), pc.less_equal(lat, 90)))
        half = pc.not_equal(pc.is_null(lon), pc.is_null(lat))  # one of lon/lat missing
        for i in _true_indices(pc.or_kleene(pc.invert(inside), half)):
            if i in type_fields.get(point.name, ()):
                continue
            r = coordinate_reason(point.name, lon[i].as_py(), lat[i].as_py())
            if r is not None:
                out[i].append(r)

    def split(self, table: pa.Table,
              typed_bad: RowReasons | None = None) -> tuple[pa.Table, pa.Table, RowReasons]:
        """(good rows, bad rows, reasons by index into the bad rows)."""
        bad = self.check(table, typed_bad)
        if not bad:
            return table, table.slice(0, 0), {}
        idx = np.array(sorted(bad), dtype=np.int64)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[idx] = False
        good = table.filter(pa.array(keep))
        rejected = table.take(pa.array(idx))
        return good, rejected, {n: bad[int(i)] for n, i in enumerate(idx)}


def _mismatches(values: pa.Array | pa.ChunkedArray, pattern: str) -> pa.Array:
    """True where a text does not match ``pattern``. Ids repeat (one per station or meter, many
    rows each): on long columns each distinct text is matched once."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        bad_words = pc.invert(pc.match_substring_regex(values.dictionary, pattern))
        return pc.take(bad_words, values.indices)
    if len(values) < 4096:
        return pc.invert(pc.match_substring_regex(values, pattern))
    distinct = pc.unique(values)
    bad = distinct.filter(pc.invert(pc.fill_null(
        pc.match_substring_regex(distinct, pattern), True)))
    if len(bad) == 0:
        return pa.repeat(pa.scalar(False), len(values))
    return pc.is_in(values, value_set=bad)


def _bad_ids(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """True where an id is too long or holds a control character (each distinct id once)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        return pc.take(_bad_ids(values.dictionary), values.indices)
    distinct = pc.unique(values) if len(values) >= 4096 else values
    bad = pc.fill_null(pc.or_(pc.greater(pc.utf8_length(distinct), ID_MAX_CHARS),
                              pc.match_substring_regex(distinct, _CONTROL)), False)
    if distinct is values:
        return bad
    refused = distinct.filter(bad)
    if len(refused) == 0:
        return pa.repeat(pa.scalar(False), len(values))
    return pc.is_in(values, value_set=refused)


def _true_indices(mask: pa.Array | pa.ChunkedArray) -> list[int]:
    """Row indices where ``mask`` is true (null counts as false)."""
    filled = pc.fill_null(mask, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    if filled.true_count == 0:
        return []
    return np.flatnonzero(filled.to_numpy(zero_copy_only=False)).tolist()


@cache
def gate_for(et: EntityType) -> Gate:
    """The compiled gate of an entity type (compiled once per process)."""
    return Gate(et)
