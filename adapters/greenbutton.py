"""Green Button (NAESB ESPI) Atom XML to ``MeterReadingObserved``.

The feed is streamed with ``xml.etree.ElementTree.iterparse``: each Atom ``entry`` is handled
when it ends and then dropped, so a file with thousands of usage points and a year of
quarter-hours each never sits in memory whole. Entries are linked by their Atom links: a
MeterReading's ``up`` link names its UsagePoint and its ``related`` link its ReadingType; an
IntervalBlock's ``up`` link names its MeterReading. Readings of a MeterReading whose
ReadingType has not been seen yet wait until it arrives (or until the end of the file).

Each IntervalReading becomes one row per usage point and interval start: ``value`` x
10^powerOfTenMultiplier in the ReadingType's ``uom`` (72 = Wh) converted to kWh, into
activeEnergyImport, activeEnergyExport or activeEnergyNet by ``flowDirection`` (1, 19, 4);
``cost`` (hundred-thousandths of the ReadingType's currency) into currency units.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.errors import InputError
from hubctl.ngsild import entity_id
from hubctl.rejects import Reason, Reject, reason
from hubctl.types import TIMESTAMP

__all__ = ["ADAPTER", "CURRENCIES", "FLOWS", "GreenButton", "UOM_WH"]

TYPE = "MeterReadingObserved"
UOM_WH = 72
# ESPI uom codes that are not energy, named for the reject message.
_UOMS = {0: "none", 5: "A", 29: "V", 38: "W", 42: "m³", 61: "VA", 63: "VAr", 65: "cos φ",
         71: "VAh", 72: "Wh", 73: "VArh", 106: "Ah", 119: "ft³", 128: "US gal", 169: "therm"}
# ESPI flowDirection -> attribute (0 = not given: delivered energy, the usual case).
FLOWS = {0: "activeEnergyImport", 1: "activeEnergyImport", 19: "activeEnergyExport",
         4: "activeEnergyNet"}
_FLOW_NAMES = {2: "lagging", 3: "leading", 20: "total", 21: "totalByPhase"}
# accumulationBehaviour values that are register readings, not energy per interval.
_CUMULATIVE = {1: "bulkQuantity", 3: "cumulative", 9: "summation"}
CURRENCIES = {840: "USD", 978: "EUR", 826: "GBP", 410: "KRW", 392: "JPY", 124: "CAD",
              36: "AUD", 156: "CNY", 756: "CHF", 752: "SEK", 578: "NOK", 208: "DKK"}
_ATOM = "{http://www.w3.org/2005/Atom}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(el: ET.Element | None, name: str) -> str | None:
    """Text of the first direct child called ``name`` (any namespace)."""
    if el is None:
        return None
    for child in el:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for child in el:
        if _local(child.tag) == name:
            return child
    return None


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


@dataclass
class ReadingType:
    """What a MeterReading's values mean."""

    uom: int | None
    multiplier: int
    interval: int | None
    flow: int
    accumulation: int | None
    currency: str | None
    ref: str

    def problem(self) -> Reason | None:
        """Why readings of this type cannot be stored as active energy, or None."""
        if self.uom != UOM_WH:
            unit = f"ESPI uom {self.uom} ({_UOMS.get(self.uom or 0, 'unknown')})"
            return reason("unknown-unit", "uom", unit=unit, canonical="kWh (uom 72, Wh)")
        if self.flow not in FLOWS:
            name = _FLOW_NAMES.get(self.flow, "unknown")
            return reason("constraint-error", "flowDirection", detail=(
                f"{self.flow} ({name}) is not delivered (1), received (19) or net (4) energy"))
        if self.accumulation in _CUMULATIVE:
            return reason("constraint-error", "accumulationBehaviour", detail=(
                f"{self.accumulation} ({_CUMULATIVE[self.accumulation]}) readings are meter "
                "register totals, not energy per interval"))
        return None


@dataclass
class _Feed:
    """What is known so far about one file's entries, and the rows not yet yielded."""

    path: Path
    usage_points: dict[str, str] = field(default_factory=dict)  # href -> local id
    meter_readings: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    reading_types: dict[str, ReadingType] = field(default_factory=dict)
    pending: dict[str, list[tuple[int, list[tuple[Any, ...]]]]] = field(default_factory=dict)
    series: dict[tuple[str, str], str] = field(default_factory=dict)  # (point, attr) -> mr
    ids: dict[str, str] = field(default_factory=dict)  # meter reading href -> entity id
    rows: dict[str, list[Any]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    records: int = 0


class GreenButton(Adapter):
    """The ``greenbutton`` adapter."""

    name = "greenbutton"
    entity_types = (TYPE,)
    summary = "Green Button / NAESB ESPI Atom XML (UsagePoint, ReadingType, IntervalBlock)."
    example = "hubctl ingest greenbutton 'downloads/*.xml'"
    reads_files_apart = True  # no state from one file to the next: one Spark task each
    params: Sequence[click.Parameter] = ()

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Batches of interval readings from every input file, streamed."""
        for path in inputs:
            yield from _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> Iterator[Batch]:
    feed = _Feed(path)
    _reset(feed)
    root: ET.Element | None = None
    entries = 0
    try:
        for event, el in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                if root is None:
                    root = el
                    if _local(el.tag) not in ("feed", "entry"):
                        raise InputError(f"is not a Green Button Atom feed (root element "
                                         f"<{_local(el.tag)}>)", path=str(path),
                                         hint="export the data as Green Button XML")
                continue
            if el.tag != _ATOM + "entry" and _local(el.tag) != "entry":
                continue
            entries += 1
            _entry(feed, el, entries)
            el.clear()
            if root is not None and root is not el:
                root.clear()
            if len(feed.rows["id"]) >= ctx.batch_rows:
                ctx.advance(0)
                yield from _flush(feed, max(1, ctx.batch_rows))
    except ET.ParseError as exc:
        raise InputError(f"is not well-formed XML: {exc}", path=str(path),
                         hint="check that the download completed") from None
    _finish(feed)
    yield from _flush(feed, max(1, ctx.batch_rows))


def _links(entry: ET.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for link in entry:
        if _local(link.tag) == "link" and link.get("href"):
            out.setdefault(link.get("rel") or "", []).append(link.get("href", "").strip())
    return out


def _entry(feed: _Feed, entry: ET.Element, number: int) -> None:
    content = _child(entry, "content")
    resource = next(iter(content), None) if content is not None else None
    if resource is None:
        return
    kind = _local(resource.tag)
    links = _links(entry)
    self_href = (links.get("self") or [_text(entry, "id") or f"entry-{number}"])[0]
    up = (links.get("up") or [""])[0]
    if kind == "UsagePoint":
        feed.usage_points[self_href] = _point_id(self_href)
    elif kind == "MeterReading":
        point = up.rsplit("/MeterReading", 1)[0] if "/MeterReading" in up else None
        related = [h for h in links.get("related", []) if "ReadingType" in h]
        feed.meter_readings[self_href] = (point or self_href.rsplit("/MeterReading", 1)[0],
                                          related[0] if related else None)
        _resolve(feed)
    elif kind == "ReadingType":
        feed.reading_types[self_href] = _reading_type(resource, self_href)
        _resolve(feed)
    elif kind == "IntervalBlock":
        meter_reading = up.rsplit("/IntervalBlock", 1)[0] if up else self_href.rsplit(
            "/IntervalBlock", 1)[0]
        readings = _block(resource)
        feed.pending.setdefault(meter_reading, []).append((number, readings))
        _resolve(feed)


def _point_id(href: str) -> str:
    """Local id of a usage point: host and resource path, e.g.
    ``services.greenbuttondata.org:RetailCustomer:5:UsagePoint:1``."""
    text = href.split("://", 1)[-1]
    host, _, rest = text.partition("/")
    rest = rest.split("/resource/", 1)[-1] if "/resource/" in "/" + rest else rest
    return ":".join(p for p in [host, *rest.split("/")] if p)


def _reading_type(el: ET.Element, ref: str) -> ReadingType:
    currency = _int(_text(el, "currency"))
    return ReadingType(
        uom=_int(_text(el, "uom")), multiplier=_int(_text(el, "powerOfTenMultiplier")) or 0,
        interval=_int(_text(el, "intervalLength")), flow=_int(_text(el, "flowDirection")) or 0,
        accumulation=_int(_text(el, "accumulationBehaviour")),
        currency=CURRENCIES.get(currency, f"{currency:03d}") if currency is not None else None,
        ref=ref)


def _block(el: ET.Element) -> list[tuple[Any, ...]]:
    """(start, duration, value text, cost text, start text, duration text) of each
    IntervalReading of a block; a reading without a timePeriod follows the one before it (or
    the block's start)."""
    interval = _child(el, "interval")
    block_start = _int(_text(interval, "start"))
    out: list[tuple[Any, ...]] = []
    for reading in el:
        if not reading.tag.endswith("IntervalReading"):
            continue
        start_text = duration_text = value = cost = None
        period = False
        for child in reading:
            tag = _local(child.tag)
            if tag == "value":
                value = (child.text or "").strip()
            elif tag == "timePeriod":
                period = True
                start_text, duration_text = _text(child, "start"), _text(child, "duration")
            elif tag == "cost":
                cost = (child.text or "").strip()
        start = _int(start_text)
        if start is None and not period:
            start = out[-1][0] + (out[-1][1] or 0) if out and out[-1][0] is not None \
                else block_start
        out.append((start, _int(duration_text), value, cost, start_text, duration_text))
    return out


def _raw(reading: tuple[Any, ...]) -> str:
    return json.dumps({"start": reading[4], "duration": reading[5], "value": reading[2],
                       "cost": reading[3]})


def _resolve(feed: _Feed, fallback: ReadingType | None = None) -> None:
    """Convert the pending blocks whose MeterReading and ReadingType are both known."""
    for mr in list(feed.pending):
        point, rt_ref = feed.meter_readings.get(mr, (None, None))
        rt = feed.reading_types.get(rt_ref or "") or fallback
        if rt is None:
            continue
        if point is None:
            point = mr.rsplit("/MeterReading", 1)[0]
        for number, readings in feed.pending.pop(mr):
            _convert(feed, mr, point, rt, number, readings)


def _finish(feed: _Feed) -> None:
    """At the end of the file: a lone ReadingType serves blocks that never named one; the
    rest are rejected (their values cannot be scaled)."""
    only = next(iter(feed.reading_types.values())) if len(feed.reading_types) == 1 else None
    _resolve(feed, only)
    for mr, blocks in feed.pending.items():
        why = reason("malformed-record", detail=(
            f"IntervalBlock of MeterReading {mr} has no ReadingType in this file "
            "(its unit and multiplier are unknown)"))
        for number, readings in blocks:
            _reject_all(feed, readings, why, number)
    feed.pending.clear()


def _series_id(feed: _Feed, mr: str, point: str, attr: str) -> str:
    """Entity id of a MeterReading: its usage point, unless another MeterReading of the same
    usage point already fills that attribute (then the MeterReading's own path)."""
    if mr in feed.ids:
        return feed.ids[mr]
    local = feed.usage_points.get(point) or _point_id(point)
    owner = feed.series.setdefault((point, attr), mr)
    if owner != mr:
        local = _point_id(mr)
    feed.ids[mr] = entity_id(TYPE, local)
    return feed.ids[mr]


def _convert(feed: _Feed, mr: str, point: str, rt: ReadingType, number: int,
             readings: list[tuple[Any, ...]]) -> None:
    problem = rt.problem()
    if problem is not None:
        _reject_all(feed, readings, problem, number)
        return
    attr = FLOWS[rt.flow]
    slot = _ATTRIBUTES.index(attr)
    eid = _series_id(feed, mr, point, attr)
    scale = 10.0 ** rt.multiplier / 1000.0  # Wh x 10^m -> kWh
    priced = attr == "activeEnergyImport"
    rows = feed.rows
    ids, starts, lengths, slots, energies = (rows["id"], rows["start"], rows["length"],
                                             rows["slot"], rows["energy"])
    costs, currencies = rows["cost"], rows["currency"]
    feed.records += len(readings)
    for i, reading in enumerate(readings):
        start, duration, value, cost = reading[:4]
        length = duration if duration is not None else rt.interval
        amount = _number(value)
        price = _number(cost)
        if (start is None or amount is None or length is None or length <= 0
                or (cost not in (None, "") and price is None)):
            feed.rejects.append(Reject(TYPE, _raw(reading), _reasons(
                start, value, amount, length, cost, price), file=str(feed.path),
                record=f"entry {number}, IntervalReading {i + 1}"))
            continue
        ids.append(eid)
        starts.append(start)
        lengths.append(length)
        slots.append(slot)
        energies.append(amount * scale)
        costs.append(price / 100_000 if price is not None and priced else None)
        currencies.append(rt.currency if price is not None and priced else None)


def _reasons(start: int | None, value: str | None, amount: float | None, length: int | None,
             cost: str | None, price: float | None) -> list[Reason]:
    out = []
    if start is None:
        out.append(reason("missing-required", "timePeriod.start"))
    if value is None or value == "":
        out.append(reason("missing-required", "value"))
    elif amount is None:
        out.append(reason("type-error", "value", value=value, expected="number"))
    if length is None or length <= 0:
        out.append(reason("missing-required", "timePeriod.duration"))
    if cost not in (None, "") and price is None:
        out.append(reason("type-error", "cost", value=cost, expected="number"))
    return out


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _reject_all(feed: _Feed, readings: list[tuple[Any, ...]], why: Reason, number: int) -> None:
    for i, reading in enumerate(readings):
        feed.records += 1
        feed.rejects.append(Reject(TYPE, _raw(reading), [why], file=str(feed.path),
                                   record=f"entry {number}, IntervalReading {i + 1}"))


_ATTRIBUTES = tuple(dict.fromkeys(FLOWS.values()))
_COLUMNS = ("id", "start", "length", "slot", "energy", "cost", "currency")


def _reset(feed: _Feed) -> None:
    feed.rows = {c: [] for c in _COLUMNS}
    feed.rejects = []
    feed.records = 0


def _flush(feed: _Feed, size: int) -> Iterator[Batch]:
    rows = feed.rows
    n = len(rows["id"])
    micros = np.asarray(rows["start"], dtype=np.int64) * 1_000_000
    at = pa.array(micros, pa.int64()).cast(TIMESTAMP)
    slot = np.asarray(rows["slot"], dtype=np.int8)
    energy = np.asarray(rows["energy"], dtype=np.float64)
    table = pa.table({
        "id": pa.array(rows["id"], pa.string()), "observed_at": at, "dateObservedFrom": at,
        "intervalLength": pa.array(np.asarray(rows["length"], dtype=np.int64)),
        **{name: pa.array(energy, mask=slot != k) for k, name in enumerate(_ATTRIBUTES)},
        "cost": pa.array(rows["cost"], pa.float64()),
        "currency": pa.array(rows["currency"], pa.string()),
        "source": pa.repeat(pa.scalar(f"greenbutton:{feed.path.name}"), n),
        "_time_index": pa.repeat(pa.scalar("dateObservedFrom"), n),
    })
    rejects = feed.rejects
    _reset(feed)
    for start in range(0, max(n, 1), size):  # at most ``size`` rows a batch
        part = table.slice(start, size)
        yield Batch(TYPE, part, str(feed.path), part.num_rows + len(rejects),
                    rejects=rejects, cell_columns=_ATTRIBUTES)
        rejects = []


ADAPTER = GreenButton()
