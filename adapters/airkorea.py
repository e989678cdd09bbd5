"""AirKorea real-time measurements (data.go.kr ``getMsrstnAcctoRltmMesureDnsty`` /
``getCtprvnRltmMesureDnsty`` JSON: one response, an array of them or JSON Lines of pages) with
the station list (``getMsrstnList`` JSON, or a CSV ``name,lat,lon``) given as ``--stations``.

Each listed station becomes a PointOfInterest, each measurement item an AirQualityObserved row
keyed by station and hour: ``dataTime`` is Korea time (``24:00`` = next midnight), gases in ppm
are converted to the schema's units, ``-`` is a missing value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.csvread import read_whole
from hubctl.errors import InputError, UsageError
from hubctl.localtime import wall_to_utc
from hubctl.ngsild import entity_id
from hubctl.registry import get_type
from hubctl.rejects import Reason, Reject, reason
from hubctl.rows import build_table
from hubctl.units import conversion_factor

__all__ = ["ADAPTER", "KST", "AirKorea", "load_stations", "parse_data_time"]

SOURCE = "AirKorea"
AQO, POI = "AirQualityObserved", "PointOfInterest"
LAT_RANGE, LON_RANGE = (33.0, 39.0), (124.0, 132.0)  # South Korea; the two do not overlap
MISSING = (None, "", "-")
# item field -> (attribute, unit AirKorea publishes it in: GQ = µg/m³, 59 = ppm)
POLLUTANTS = {"pm10Value": ("pm10", "GQ"), "pm25Value": ("pm25", "GQ"), "no2Value": ("no2", "59"),
              "o3Value": ("o3", "59"), "so2Value": ("so2", "59"), "coValue": ("co", "59")}
KHAI_LEVELS = {"1": "good", "2": "moderate", "3": "unhealthy", "4": "veryUnhealthy"}
# What AirKorea itself computed, kept beside the concentrations as reported attributes: its CAI
# grades (1-4) and its 24-hour predicted moving PM concentrations (µg/m³, the CAI's PM input).
REPORTED_GRADES = {"khaiGrade": "reportedCaiGrade", "pm10Grade": "reportedPm10Grade",
                   "pm25Grade": "reportedPm25Grade", "pm10Grade1h": "reportedPm10Grade1h",
                   "pm25Grade1h": "reportedPm25Grade1h", "o3Grade": "reportedO3Grade",
                   "no2Grade": "reportedNo2Grade", "coGrade": "reportedCoGrade",
                   "so2Grade": "reportedSo2Grade"}
REPORTED_VALUES = {"khaiValue": "reportedCai", "pm10Value24": "reportedPm10Avg24h",
                   "pm25Value24": "reportedPm25Avg24h"}
MAPPED = frozenset({"stationName", "dataTime", *REPORTED_GRADES, *REPORTED_VALUES, *POLLUTANTS})
STATION_MAPPED = frozenset({"stationName", "name", "addr", "mangName", "dmX", "dmY", "lat", "lon"})
CSV_ALIASES = {"stationname": "stationName", "latitude": "lat", "longitude": "lon", "lng": "lon",
               "dmx": "dmX", "dmy": "dmY", "address": "addr", "mangname": "mangName"}
RESULT_HINTS = {"22": "the service key's daily request limit is used up; fetch again tomorrow",
                "30": "register the service key for this API at data.go.kr, then fetch again",
                "31": "the service key has expired; renew it at data.go.kr, then fetch again"}
Entry = dict[str, Any] | Reject  # a lake row or a rejected record, in input order
_DATA_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?")
KST = timezone(timedelta(hours=9), "KST")  # Korea has kept UTC+9 without DST since 1988


def parse_data_time(value: Any, zone: tzinfo = KST) -> datetime | None:
    """UTC time of an AirKorea ``dataTime`` ("YYYY-MM-DD HH:MM" local; "24:00" = next midnight)."""
    match = _DATA_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    y, mo, d, h, mi, s = (int(g or 0) for g in match.groups())
    next_day = h == 24 and mi == 0 and s == 0
    try:
        local = datetime(y, mo, d, 0 if next_day else h, mi, s) + timedelta(days=next_day)
    except ValueError:
        return None
    return wall_to_utc(local, zone)


def _number(value: Any) -> Any:
    """A float from published text; None if missing; anything else unchanged (a type-error)."""
    if isinstance(value, str):
        if value.strip() in MISSING:
            return None
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else str(value)
    return value


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() in MISSING else str(value).strip()


def _extra(record: dict[str, Any], mapped: frozenset[str]) -> str | None:
    """The unmapped fields that carry information, as NGSI-LD normalized Properties."""
    extra = {k: {"type": "Property", "value": v} for k, v in record.items()
             if k not in mapped and not (v in MISSING or (isinstance(v, str) and not v.strip()))}
    return json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None


@cache
def _factors() -> dict[str, float]:
    """Item field -> factor to the canonical unit the schema declares for its attribute."""
    et = get_type(AQO)
    out: dict[str, float] = {}
    for item_field, (attr, unit) in POLLUTANTS.items():
        factor = conversion_factor(attr, unit, et.attributes[attr].unit or unit)
        if factor is None:
            raise RuntimeError(f"hubctl/units.py cannot convert {attr} from {unit}")
        out[item_field] = factor
    return out


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", path=str(path)) from None


def _load_json(path: Path) -> list[tuple[str, Any]]:
    """The documents of a file, with where each is: one JSON value, an array, or JSON Lines."""
    text = _read_text(path).strip()
    if text.startswith("<"):
        raise _xml_error(path, text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as whole:
        lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if len(lines) < 2 or not all(ln.lstrip().startswith("{") for _, ln in lines):
            raise InputError(f"is not JSON ({whole.msg} at line {whole.lineno} column "
                             f"{whole.colno})", path=str(path),
                             hint="fetch the data with returnType=json") from None
        docs = []
        for n, line in lines:
            try:
                docs.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"is not JSON ({exc.msg} at column {exc.colno})",
                                 path=str(path), record=f"line {n}") from None
        return docs
    if isinstance(doc, list):
        return [(f"[{i}]", d) for i, d in enumerate(doc)]
    return [("", doc)]


def _api_error(path: str | Path, code: Any, msg: Any, record: str | None = None) -> InputError:
    code = str(code).strip()
    return InputError(f"the API answered resultCode {code} ({msg or 'no message'}) instead of "
                      "data", path=str(path), record=record, hint=RESULT_HINTS.get(code))


def _xml_error(path: str | Path, text: str) -> InputError:
    """An XML answer (data.go.kr sends its key errors as XML): its code, else 'not JSON'."""
    def first(*tags: str) -> str | None:
        found = (re.search(rf"<{t}>\s*([^<]*?)\s*</{t}>", text) for t in tags)
        return next((m.group(1) for m in found if m), None)

    code = first("returnReasonCode", "resultCode")
    if code:
        return _api_error(path, code, first("returnAuthMsg", "resultMsg", "errMsg"))
    return InputError("is XML, not JSON", path=str(path), hint="fetch it with returnType=json")


def _items(doc: Any, path: str | Path, where: str) -> list[Any]:
    """``response.body.items`` of one API response (a list, or an object holding ``item``)."""
    record = where or None
    resp = doc.get("response", doc) if isinstance(doc, dict) else None
    if not isinstance(resp, dict):
        raise InputError("is not an AirKorea API response (no response object)",
                         path=str(path), record=record)
    header = resp.get("header") if isinstance(resp.get("header"), dict) else None
    code = header.get("resultCode") if header else None
    if code is not None and str(code).strip() == "03":
        return []  # NODATA_ERROR: the API had nothing for this query; an empty page, not a failure
    if code is not None and str(code).strip() != "00":
        raise _api_error(path, code, header and header.get("resultMsg"), record)
    body = resp.get("body")
    if not isinstance(body, dict) or "items" not in body:
        raise InputError("has no response.body.items; expected an AirKorea API response",
                         path=str(path), record=record)
    items = body["items"]
    items = items.get("item") if isinstance(items, dict) else items
    items = [items] if isinstance(items, dict) else [] if items in (None, "") else items
    if not isinstance(items, list):
        raise InputError("response.body.items is neither a list nor an object with item",
                         path=str(path), record=record)
    return items


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """Every item of every response in a file, with its place ("items[3]", "line 2 items[0]")."""
    pages = [(where, _items(doc, path, where)) for where, doc in _load_json(path)]
    for where, items in pages:
        for i, item in enumerate(items):
            yield f"{where} items[{i}]".lstrip(), item


Position = tuple[float | None, float | None]  # (lon, lat); (None, None) if the list gives none


@dataclass
class Stations:
    """The stations file read: usable stations, its PointOfInterest rows and its rejects."""

    by_name: dict[str, Position] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)  # name -> why its listing was rejected
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def _position(rec: dict[str, Any]) -> Position | str:
    """(lon, lat) of a station, (None, None) if it has none, or why it is unusable: ``lat``/``lon``
    as named, ``dmX``/``dmY`` in either order, told apart by South Korea's ranges."""
    explicit = "lat" in rec or "lon" in rec
    a, b = (rec.get("lat"), rec.get("lon")) if explicit else (rec.get("dmX"), rec.get("dmY"))
    if _text(a) is None and _text(b) is None:
        return None, None
    x, y = _number(a), _number(b)
    if not isinstance(x, float) or not isinstance(y, float):
        return f"its coordinates ({a!r}, {b!r}) are not numbers"
    if explicit:
        return y, x
    for lat, lon in ((x, y), (y, x)):
        if LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LON_RANGE[0] <= lon <= LON_RANGE[1]:
            return lon, lat
    return (f"dmX/dmY ({x:g}, {y:g}) are not a position in South Korea (latitude "
            f"{LAT_RANGE[0]:g}..{LAT_RANGE[1]:g}, longitude {LON_RANGE[0]:g}..{LON_RANGE[1]:g})")


def _csv_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records of a stations CSV, header names folded to the API's (name, lat, lon, ...)."""
    table, lines = read_whole(path)
    header = [CSV_ALIASES.get(h.strip().lower(), h.strip().lower())
              for h in table.column_names]
    if not ({"lat", "lon"} <= set(header) or {"dmX", "dmY"} <= set(header)) or not (
            "name" in header or "stationName" in header):
        raise InputError(f"the CSV header ({','.join(header)}) must name the station (name or "
                         "stationName) and its lat and lon columns", path=str(path),
                         hint="start the file with the line name,lat,lon")
    for rec, line in zip(table.rename_columns(header).to_pylist(), lines.tolist(), strict=True):
        yield f"line {line}", rec


def _station_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Station records of an API station list (JSON) or of a CSV with a header."""
    text = _read_text(path)
    if text.lstrip()[:1] in ("{", "[", "<"):
        return _records(path)
    return _csv_records(path)


def load_stations(path: Path, ctx: ReadContext) -> Stations:
    """Read the stations file; a station listed again is rejected, the first listing kept."""
    out = Stations()
    repeated: list[str] = []
    for where, rec in _station_records(path):
        raw = json.dumps(rec, ensure_ascii=False, default=str)
        checked = _check_station(rec, out, repeated)
        if isinstance(checked, Reason):
            out.rejects.append(Reject(POI, raw, [checked], file=str(path), record=where))
            continue
        name, (lon, lat) = checked
        out.by_name[name] = (lon, lat)
        out.rows.append({
            "id": entity_id(POI, name), "observed_at": ctx.arrival, "name": name,
            "category": ["airQualityStation"], "lon": lon, "lat": lat,
            "address": _text(rec.get("addr")), "alternateName": _text(rec.get("mangName")),
            "source": SOURCE, "_time_index": "arrival", "_extra": _extra(rec, STATION_MAPPED),
            "_raw": raw, "_record": where})
    if repeated:
        ctx.warn(f"{path.name}: {len(repeated)} station listing(s) repeated "
                 f"({', '.join(dict.fromkeys(repeated))}); the first listing of each is kept")
    return out


def _check_station(rec: Any, out: Stations, repeated: list[str]) -> tuple[str, Position] | Reason:
    """The name and position of the station a record lists, or why it cannot be used."""
    if not isinstance(rec, dict):
        return reason("malformed-record", detail="a station record must be a JSON object")
    name = _text(rec.get("stationName", rec.get("name")))
    if name is None:
        return reason("missing-required", "stationName")
    if name in out.by_name or name in out.unusable:
        repeated.append(name)
        return reason("malformed-record", "stationName",
                      detail=f"station {name} listed again; the first listing is kept")
    pos = _position(rec)
    if isinstance(pos, str):
        out.unusable[name] = f"station {name}: {pos}"
        return reason("malformed-record", "location", detail=out.unusable[name])
    return name, pos


def _hinted(r: Reason, what_to_do: str) -> Reason:
    return Reason(r.code, r.field, f"{r.message}; {what_to_do}")


def _item_reasons(item: Any, stations: Stations, ts: datetime | None) -> list[Reason]:
    """Why a measurement item cannot become a row (empty if it can)."""
    if not isinstance(item, dict):
        return [reason("malformed-record", detail="an item must be a JSON object")]
    out: list[Reason] = []
    name = _text(item.get("stationName"))
    if name is None:  # getMsrstnAcctoRltmMesureDnsty leaves it out unless asked with ver
        out.append(_hinted(reason("missing-required", "stationName"),
                           "a per-station response (getMsrstnAcctoRltmMesureDnsty) does not "
                           "name its station in its items, in any ver: give it with "
                           "--station NAME"))
    elif name in stations.unusable:
        out.append(_hinted(reason("malformed-record", "stationName",
                                  detail=stations.unusable[name]), "fix it in the --stations file"))
    elif name not in stations.by_name:
        out.append(_hinted(reason("unknown-station", "stationName", value=name),
                           "add it to the --stations file"))
    if ts is None:
        value = item.get("dataTime")
        out.append(reason("missing-required", "dataTime") if _text(value) is None
                   else reason("bad-timestamp", "dataTime", value=value))
    return out


def _measurement(item: dict[str, Any], name: str, pos: Position, ts: datetime) -> dict[str, Any]:
    """The AirQualityObserved lake row of one item (values left raw where not numbers)."""
    row: dict[str, Any] = {
        "id": entity_id(AQO, name), "observed_at": ts, "dateObserved": ts,
        "lon": pos[0], "lat": pos[1], "refPointOfInterest": entity_id(POI, name),
        "source": SOURCE, "_time_index": "dateObserved",
        "airQualityIndex": _number(item.get("khaiValue")), "_extra": _extra(item, MAPPED),
    }
    grade = _text(item.get("khaiGrade"))  # an unknown grade stays as it is: an enum-error
    row["airQualityLevel"] = KHAI_LEVELS.get(grade, grade) if grade else None
    for item_field, factor in _factors().items():
        value = _number(item.get(item_field))
        row[POLLUTANTS[item_field][0]] = value * factor if isinstance(value, float) else value
    for item_field, attr in REPORTED_VALUES.items():
        row[attr] = _number(item.get(item_field))
    for item_field, attr in REPORTED_GRADES.items():
        number = _number(item.get(item_field))  # a grade out of 1..4 is a range-error
        row[attr] = int(number) if isinstance(number, float) and number.is_integer() else number
    return row


def _measurements(path: Path, stations: Stations, station: str | None = None
                  ) -> Iterator[Entry]:
    """Lake rows and rejects of one measurement file, in input order; ``station`` names the
    station of items that do not name theirs (a saved per-station response)."""
    records = _records(path)
    if station:
        records = ((where, {"stationName": station, **item} if isinstance(item, dict)
                    and _text(item.get("stationName")) is None else item)
                   for where, item in records)
    return _entries(str(path), records, stations)


def _entries(file: str, records: Iterable[tuple[str, Any]], stations: Stations) -> Iterator[Entry]:
    """Lake rows and rejects of measurement items (with where each is), in input order."""
    for where, item in records:
        raw = json.dumps(item, ensure_ascii=False, default=str)
        ts = parse_data_time(item.get("dataTime")) if isinstance(item, dict) else None
        reasons = _item_reasons(item, stations, ts)
        if reasons or ts is None:
            yield Reject(AQO, raw, reasons, file=file, record=where)
        else:
            name = _text(item["stationName"]) or ""
            yield _measurement(item, name, stations.by_name[name], ts) | {
                "_raw": raw, "_record": where}


def _batches(type_name: str, file: str, entries: Iterable[Entry], size: int) -> Iterator[Batch]:
    """Batches of at most ``size`` rows; each reject rides with the batch it was read in."""
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for entry in entries:
        if isinstance(entry, Reject):
            rejects.append(entry)
            continue
        rows.append(entry)
        if len(rows) >= size:
            yield _batch(type_name, file, rows, rejects)
            rows, rejects = [], []
    if rows or rejects:
        yield _batch(type_name, file, rows, rejects)


def _batch(type_name: str, file: str, rows: list[dict[str, Any]], rejects: list[Reject]) -> Batch:
    records = len(rows) + sum(r.records for r in rejects)
    if not rows:
        return Batch(type_name, None, file, records, rejects=rejects)
    table, typed_bad = build_table(rows, get_type(type_name))
    for col in ("_raw", "_record"):
        table = table.append_column(col, pa.array([r[col] for r in rows], pa.string()))
    return Batch(type_name, table, file, records, typed_bad=typed_bad, rejects=rejects)


class AirKorea(Adapter):
    """The ``airkorea`` adapter."""

    name = "airkorea"
    entity_types = (AQO, POI)
    summary = "AirKorea real-time measurement API responses (JSON) plus the station list."
    example = "hubctl ingest airkorea seoul-2024-05-01.json --stations stations.json"
    params: Sequence[click.Parameter] = [
        click.Option(["--stations"], required=True, type=click.Path(exists=True, dir_okay=False),
                     help="AirKorea station list (getMsrstnList JSON) or a CSV name,lat,lon."),
        click.Option(["--station"], metavar="NAME", multiple=True,
                     help="With --api: a station for getMsrstnAcctoRltmMesureDnsty "
                          "(repeatable). With files: the station of a saved per-station "
                          "response, whose items do not name it."),
    ]
    pull_example = ("AIRKOREA_SERVICE_KEY=... hubctl ingest airkorea --api --sido 서울 "
                    "--stations stations.json")

    @property
    def pull_params(self) -> list[click.Parameter]:
        """Options of ``--api`` pulls from the data.go.kr endpoint."""
        from hubctl.adapters.airkorea_api import PARAMS

        return PARAMS

    def is_pull(self, options: dict[str, Any]) -> bool:
        """True when these options ask for an API pull instead of files."""
        return bool(options.get("api"))

    def pull_source(self, options: dict[str, Any]) -> str:
        """The default source name of a pull (its cursor is kept under it)."""
        from hubctl.adapters.airkorea_api import source_name

        return source_name(options)

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The listed stations (PointOfInterest), then the measurements of every input."""
        if not options.get("stations"):
            raise UsageError("the airkorea adapter needs --stations FILE",
                             hint="pass the station list (getMsrstnList JSON or name,lat,lon CSV)")
        stations_path = Path(options["stations"])
        stations = load_stations(stations_path, ctx)
        size = max(1, ctx.batch_rows)
        pulled = None
        if self.is_pull(options):  # checks the key and the query before anything is written
            from hubctl.adapters.airkorea_api import pull

            pulled = pull(options, stations, ctx)
        yield from _batches(POI, str(stations_path), [*stations.rows, *stations.rejects], size)
        if pulled is not None:
            yield from pulled
            return
        named = list(options.get("station") or ())
        if len(named) > 1:
            raise UsageError("give one --station NAME when reading files: a saved "
                             "getMsrstnAcctoRltmMesureDnsty response is one station's",
                             hint="ingest each station's file in its own run, or use --api "
                                  "to pull several stations")
        for path in inputs:
            entries = list(_measurements(Path(path), stations, named[0] if named else None))
            ctx.advance(Path(path).stat().st_size)
            yield from _batches(AQO, str(path), entries, size)


ADAPTER = AirKorea()
