"""NGSI-LD entities to lake batches: the reader the ``ngsi-ld`` file adapter and the
``ngsi-ld-broker`` pull share.

Entities may be in normalized, concise or keyValues form and of any type that has a schema in
``schemas/``. Each is normalized (units converted to the schema's), dated by its time index and
turned into a lake row; attributes the schema does not know are kept in ``_extra``. Known
defects of real documents are reported once per input through the run's warnings.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from hubctl.adapter import Batch, ReadContext
from hubctl.errors import UsageError
from hubctl.jsonstream import iter_records
from hubctl.ngsild import (
    Parsed,
    normalize,
    resolve_type,
    time_index,
    type_name,
)
from hubctl.registry import EntityType, registry
from hubctl.rejects import Reason, Reject, reason
from hubctl.rows import build_table, entity_to_row

__all__ = ["EntityReader", "assumed_type"]

Entry = dict[str, Any] | Reject  # a lake row (with _raw and _record) or a rejected record


def assumed_type(value: Any) -> str | None:
    """The registered type named by ``--type``, or a UsageError listing the known ones."""
    if value in (None, ""):
        return None
    name = type_name(value)
    if name not in registry():
        raise UsageError(f"--type {value!r} is not a known entity type",
                         hint=f"known types: {', '.join(sorted(registry()))}")
    return name


def _is_naive(value: Any) -> bool:
    """Whether ``value`` is date-time text without a time zone."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.strip()).tzinfo is None
    except ValueError:
        return False


@dataclass
class _TypeReport:
    """What one file showed about the entities of one type."""

    unknown: dict[str, None] = field(default_factory=dict)
    naive: dict[str, list[Any]] = field(default_factory=dict)  # attribute -> [count, example]
    sources: Counter[str] = field(default_factory=Counter)
    notes: dict[str, None] = field(default_factory=dict)

    def saw(self, et: EntityType, parsed: Parsed, source: str) -> None:
        """Record the defects of one parsed entity."""
        self.unknown.update(dict.fromkeys(parsed.unknown))
        self.notes.update(dict.fromkeys(parsed.warnings))
        self.sources[source] += 1
        for name, obj in parsed.entity.items():
            if not isinstance(obj, dict):
                continue
            attr = et.attributes.get(name)
            if attr is not None and attr.column.name == "timestamp" and _is_naive(obj.get("value")):
                self.naive.setdefault(name, [0, obj["value"]])[0] += 1
            if _is_naive(obj.get("observedAt")):
                self.naive.setdefault(f"{name}.observedAt", [0, obj["observedAt"]])[0] += 1

    def messages(self, file: str, et: EntityType) -> list[str]:
        """The warnings of this file and type, each once."""
        out = [f"{file}: {et.name}: {note}" for note in self.notes]
        for name, (count, example) in self.naive.items():
            out.append(f"{file}: {et.name}: {name} has no time zone in {_n(count, 'entity')} "
                       f"(e.g. {example!r}); read as UTC")
        for source, count in self.sources.items():
            if source != "observedAt":
                where = "the arrival time" if source == "arrival" else source
                out.append(f"{file}: {et.name}: {_n(count, 'entity')} without observedAt; "
                           f"time index taken from {where}")
        if self.unknown:
            out.append(f"{file}: {et.name}: {_n(len(self.unknown), 'attribute')} not in the "
                       f"schema kept in _extra: {', '.join(self.unknown)}")
        by_lower = {name.lower(): name for name in et.attributes}
        for name in self.unknown:
            known = by_lower.get(name.lower())
            if known:
                out.append(f"{file}: {et.name}: {name!r} is not in the schema (kept in "
                           f"_extra); did you mean {known!r}?")
        return out


def _n(count: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {noun if count == 1 else plural}"


@dataclass
class _Group:
    """Rows and rejects of one entity type read from one file, not yet yielded."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.rejects)


class EntityReader:
    """One input (a file, or a broker's answers): its entities grouped by type, then batches
    and warnings."""

    def __init__(self, path: Path | str, chunks: Iterable[str], assumed: str | None,
                 ctx: ReadContext) -> None:
        """``path``: the file, or the URL a broker pull read the text from; ``chunks``: its
        text, read as it is needed (the file is never held whole)."""
        self.path, self.chunks, self.assumed, self.ctx = path, chunks, assumed, ctx
        self.label = path.name if isinstance(path, Path) else path
        self.reports: dict[str, _TypeReport] = {}

    def batches(self) -> Iterator[Batch]:
        """Batches per entity type, flushed at ``batch_rows``; warnings at the end."""
        groups: dict[str, _Group] = {}
        for pointer, obj, text in iter_records(self.chunks):
            name, entry = self.entry(pointer, obj, text)
            group = groups.setdefault(name, _Group())
            if isinstance(entry, Reject):
                group.rejects.append(entry)
            else:
                group.rows.append(entry)
            if len(group) >= self.ctx.batch_rows:
                yield self.batch(name, groups.pop(name))
        for name, group in groups.items():
            yield self.batch(name, group)
        for name, report in self.reports.items():
            for message in report.messages(self.label, registry()[name]):
                self.ctx.warn(message)

    def entry(self, pointer: str, obj: Any, text: str = "") -> tuple[str, Entry]:
        """The type and the lake row (or reject) of one document of the file."""
        if isinstance(obj, ValueError):
            return self.reject(self.assumed or "", text, pointer,
                               [reason("malformed-record", detail=str(obj))])
        raw = self.raw(pointer, obj, text)
        if not isinstance(obj, dict):
            detail = f"an entity must be a JSON object, not {type(obj).__name__}"
            return self.reject(self.assumed or "", raw, pointer,
                               [reason("malformed-record", detail=detail)])
        name, bad = resolve_type(obj, self.assumed)
        if bad is not None:
            return self.reject(name, raw, pointer, [bad])
        et = registry()[name]
        parsed = normalize({**obj, "type": et.name}, et)
        if parsed.reasons:
            return self.reject(name, raw, pointer, parsed.reasons)
        observed_at, source = time_index(parsed.entity, et, self.ctx.arrival)
        self.reports.setdefault(name, _TypeReport()).saw(et, parsed, source)
        row = entity_to_row(parsed.entity, et, observed_at, source, parsed.unknown)
        row["_raw"], row["_record"] = raw, pointer
        return name, row

    def raw(self, pointer: str, obj: Any, text: str) -> str:
        """The record as it was read: its text for JSON Lines, else its JSON text."""
        if pointer.startswith("line ") and text:
            return text
        return json.dumps(obj, ensure_ascii=False)

    def reject(self, name: str, raw: str, pointer: str,
               reasons: list[Reason]) -> tuple[str, Reject]:
        """A rejected record filed under entity type ``name``."""
        return name, Reject(name, raw, reasons, file=str(self.path), record=pointer)

    def batch(self, name: str, group: _Group) -> Batch:
        """The Batch of one group: a typed table with _raw and _record, and the rejects."""
        records = len(group.rows) + sum(r.records for r in group.rejects)
        if not group.rows:
            return Batch(name, None, str(self.path), records, rejects=group.rejects)
        table, typed_bad = build_table(group.rows, registry()[name])
        for col in ("_raw", "_record"):
            table = table.append_column(col, pa.array([r[col] for r in group.rows], pa.string()))
        return Batch(name, table, str(self.path), records, typed_bad=typed_bad,
                     rejects=group.rejects)
