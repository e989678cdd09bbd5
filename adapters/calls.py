"""Emergency-call / calls-for-service CSV (911, 112, police CAD exports) into ``Alert`` rows.

A *profile* names the columns of a known layout: ``berkeley`` (Berkeley PD calls for service:
date and time in separate columns, coordinates embedded as "(lat, lon)" in a quoted multi-line
address, ``&amp;`` entities) and ``korea-112`` (Korean headers: 접수일시, 사건종별, 위도, 경도,
출동일시, 도착일시, ...). Any other layout is described with ``--map column=field``; when
``--profile`` is absent the profile is detected from the header and the choice is reported.

Everything is vectorised over Arrow: times are split by regular expressions into numbers and
converted from local time to UTC per distinct local hour (so DST gaps and overlaps follow the
time-zone database); Python only touches distinct texts (HTML entities, ids that need
percent-encoding) and rejected records. A call without usable coordinates is a real call: it is
kept with an empty location and counted in a warning.

The publisher's call type (Berkeley ``OFFENSE``, 112 ``사건종별``) is kept as published in
``callType``; ``subCategory`` holds only a value of Smart Data Models' enum, derived from the
call type by :data:`SUBCATEGORY_KEYWORDS` (a call type the table does not map leaves it empty
and is counted in a warning).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    Problems,
    blank_to_null,
    check_mapped,
    coordinates,
    csv_batches,
    extra_json,
    open_text_csv,
    parse_map,
    parse_times,
    postal_address,
    type_error,
    unescape_html,
    urns,
)
from hubctl.arrowkit import parse_numbers
from hubctl.csvread import CSV_LIMIT_PARAMS, csv_limits
from hubctl.errors import InputError
from hubctl.localtime import zone
from hubctl.rejects import Reason, reason

__all__ = ["ADAPTER", "FIELDS", "PROFILES", "SUBCATEGORY_KEYWORDS", "Calls", "Profile",
           "detect_profile", "sdm_subcategory"]

TYPE = "Alert"

#: The fields ``--map column=field`` can fill, and what each holds.
FIELDS: dict[str, str] = {
    "id": "case or incident number (the last part of the entity id)",
    "dateIssued": "date and time the call was received",
    "issuedDate": "date the call was received (with issuedTime)",
    "issuedTime": "time of day the call was received (with issuedDate)",
    "callType": "type of call or incident as the publisher names it",
    "subCategory": "older name of callType (still accepted); SDM's subCategory is derived",
    "description": "broader class or remarks",
    "category": "Smart Data Models category (default security)",
    "lat": "latitude (WGS84)",
    "lon": "longitude (WGS84)",
    "location": "text holding the position: '(lat, lon)', 'lat, lon' or 'POINT (lon lat)'",
    "address": "address or block location",
    "areaServed": "district, precinct or responsible station",
    "dateDispatched": "date and time a unit was dispatched",
    "dateArrived": "date and time the first unit arrived",
    "responseTime": "response time in seconds, when the source gives it",
    "priority": "the source's urgency code (112: C0..C4)",
    "severity": "Smart Data Models severity (informational, low, medium, high, critical)",
}
_TIME_FIELDS = ("dateIssued", "dateDispatched", "dateArrived")
#: Case-insensitive keywords of call types -> Smart Data Models Alert subCategory; the first
#: row with a keyword found in the call type wins. A call type that is itself a value of SDM's
#: enum (any case) is that value. Property crime (theft, burglary, vandalism, fraud), drugs,
#: weapons, missing persons and fires of unknown kind have no SDM subcategory: unmapped.
SUBCATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("robbery", ("robbery", "강도")),
    ("assault", ("assault", "battery", "domestic violence", "폭력", "폭행", "상해")),
    ("carAccident", ("traffic accident", "traffic collision", "vehicle accident",
                     "vehicle collision", "car accident", "auto accident", "hit and run",
                     "hit & run", "교통사고")),
    ("civilDisorder", ("disturbance", "disorderly", "civil disorder", "riot", "소란", "난동")),
    ("suspiciousAction", ("suspicious", "거동수상", "수상한")),
    ("buildingFire", ("structure fire", "building fire", "house fire", "건물화재")),
    ("forestFire", ("forest fire", "wildfire", "brush fire", "산불")),
    ("heartAttack", ("heart attack", "cardiac arrest", "심정지")),
    ("carWrongDirection", ("wrong way", "역주행")),
    ("carStopped", ("stalled vehicle", "disabled vehicle", "고장차량")),
    ("hazardOnRoad", ("road hazard", "debris in road", "낙하물")),
    ("trafficJam", ("traffic jam", "traffic congestion", "교통정체")),
)
_UNMAPPED = "unmapped:"  # counts key prefix of a call type without a subCategory
# 112 response codes (C0 most urgent .. C4 not a police matter) -> SDM severity
_SEVERITY = {"0": "critical", "1": "high", "2": "medium", "3": "low", "4": "informational"}


@dataclass(frozen=True)
class Profile:
    """A known call-file layout: accepted header names per field, its zone and source name."""

    name: str
    source: str  # the id namespace: urn:ngsi-ld:Alert:<source>:<case>
    alert_source: str
    timezone: str
    columns: dict[str, tuple[str, ...]]
    detect: tuple[tuple[str, ...], ...]  # every group must have one of its headers

    def matches(self, header: Sequence[str]) -> bool:
        """Whether a header looks like this layout."""
        have = set(header)
        return all(any(h in have for h in group) for group in self.detect)

    def mapping(self, header: Sequence[str]) -> dict[str, str]:
        """field -> column for the columns of this header."""
        have = set(header)
        out: dict[str, str] = {}
        for field, names in self.columns.items():
            found = next((n for n in names if n in have), None)
            if found is not None:
                out[field] = found
        return out


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("berkeley", "berkeley-pd", "Berkeley PD", "America/Los_Angeles", {
        "id": ("CASENO",), "issuedDate": ("EVENTDT",), "issuedTime": ("EVENTTM",),
        "callType": ("OFFENSE",), "description": ("CVLEGEND",),
        "location": ("Block_Location",), "address": ("BLKADDR",),
    }, (("CASENO",), ("EVENTDT",), ("EVENTTM",), ("Block_Location",))),
    Profile("korea-112", "112", "112", "Asia/Seoul", {
        "id": ("접수번호", "사건번호", "신고번호", "사건관리번호"),
        "dateIssued": ("접수일시", "신고일시", "접수시각"),
        "issuedDate": ("접수일자", "신고일자"), "issuedTime": ("접수시간", "신고시간"),
        "callType": ("사건종별", "사건종류", "신고유형", "사건유형"),
        "description": ("사건분류", "종별대분류", "대분류"),
        "lat": ("위도", "Y좌표", "y좌표"), "lon": ("경도", "X좌표", "x좌표"),
        "address": ("발생지주소", "발생장소", "주소", "발생지"),
        "areaServed": ("관할서", "관할경찰서", "관할관서", "관할지구대", "지구대"),
        "dateDispatched": ("출동일시", "지령일시", "출동지령일시"),
        "dateArrived": ("도착일시", "현장도착일시"),
        "responseTime": ("도착소요시간(초)", "출동소요시간(초)"),
        "priority": ("긴급도", "대응코드", "코드", "사건코드"),
    }, (("접수일시", "신고일시", "접수시각", "접수일자", "신고일자"),
        ("사건종별", "사건종류", "신고유형", "사건유형"))),
)}


def detect_profile(header: Sequence[str]) -> Profile | None:
    """The first built-in profile whose identifying headers are all present."""
    return next((p for p in PROFILES.values() if p.matches(header)), None)


@dataclass(frozen=True)
class Layout:
    """How one file is read: field -> column, zone, source names, the profile used."""

    fields: dict[str, str]
    zone: Any
    source: str
    alert_source: str
    profile: str


def resolve_layout(path: Path, header: Sequence[str], options: dict[str, Any]) -> Layout:
    """Pick the profile (given or detected), apply ``--map``, check the columns exist."""
    name = options.get("profile")
    overrides = parse_map(options.get("map") or (), FIELDS, "call")
    if "subCategory" in overrides:  # the older name of the call type
        overrides.setdefault("callType", overrides.pop("subCategory"))
    profile = PROFILES[name] if name else detect_profile(header)
    if profile is None and not overrides:
        raise InputError(
            "the header matches no call profile (" + ", ".join(PROFILES) + ")",
            path=str(path), record="line 1",
            hint="name the columns with --map, e.g. --map 'Received=dateIssued' "
                 "--map 'Type=callType' --map 'Lat=lat' --map 'Lon=lon'")
    fields = profile.mapping(header) if profile else {}
    fields.update(overrides)
    check_mapped(path, header, fields, hint="check --map and --profile against the file")
    if "dateIssued" not in fields and "issuedDate" not in fields:
        raise InputError("no column gives the call time", path=str(path), record="line 1",
                         hint="map one: --map 'COLUMN=dateIssued' (or issuedDate and issuedTime)")
    zone_name = options.get("timezone") or (profile.timezone if profile else "UTC")
    source = options.get("agency") or (profile.source if profile else path.stem)
    return Layout(fields, zone(zone_name), source,
                  options.get("agency") or (profile.alert_source if profile else source),
                  (profile.name if profile else "custom") + (" + --map" if overrides and profile
                                                             else ""))


class Calls(Adapter):
    """The ``calls`` adapter."""

    name = "calls"
    entity_types = (TYPE,)
    summary = ("Emergency-call / calls-for-service CSV (911, 112, CAD) into Alert: built-in "
               "profiles berkeley and korea-112, any other layout with --map column=field.")
    example = ("hubctl ingest calls berkeley-pd-calls-for-service-2018.csv\n"
               "  hubctl ingest calls 112_2024.csv --profile korea-112\n"
               "  hubctl ingest calls cad.csv --map 'Received=dateIssued' --map 'Type=callType'"
               " --map 'Y=lat' --map 'X=lon' --timezone America/Chicago")
    reads_files_apart = True  # no state from one file to the next: one Spark task each
    reads_byte_ranges = True  # nor from one record to the next: a large file in byte ranges
    params: Sequence[click.Parameter] = (
        click.Option(["--profile"], type=click.Choice(sorted(PROFILES)), default=None,
                     help="Layout of the file; detected from the header when absent."),
        click.Option(["--map", "map"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN as FIELD (" + ", ".join(FIELDS) + "); repeat it; "
                          "overrides the profile."),
        click.Option(["--timezone"], default=None, metavar="TZ",
                     help="Zone of times without an offset (IANA name, e.g. Asia/Seoul); "
                          "default: the profile's, UTC for --map."),
        click.Option(["--agency"], default=None, metavar="NAME",
                     help="Agency in the ids (urn:ngsi-ld:Alert:NAME:CASE) and in "
                          "alertSource; default: the profile's, the file name for --map."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """One Batch of Alert rows per CSV block of every input file."""
        if options.get("timezone"):
            zone(options["timezone"])  # a bad zone fails before any file is read
        for path in inputs:
            yield from self._read_file(path, options, ctx)

    def _read_file(self, path: Path, options: dict[str, Any],
                   ctx: ReadContext) -> Iterator[Batch]:
        stream = open_text_csv(path, csv_limits(options), batch_rows=ctx.batch_rows,
                               span=ctx.span)
        header = list(stream.schema.names)
        layout = resolve_layout(path, header, options)
        how = "given" if options.get("profile") else "detected from the header"
        if ctx.span is None or ctx.span.first:
            ctx.warn(f"{path.name}: read with profile {layout.profile} ({how}), times in "
                     f"{layout.zone}, ids urn:ngsi-ld:Alert:{layout.source}:<case>")
        counts = {"none": 0, "unusable": 0}
        unmapped: dict[str, int] = {}
        yield from csv_batches(stream, path, TYPE, ctx,
                               partial(_convert, path=path, layout=layout, counts=counts,
                                       unmapped=unmapped))
        ctx.file_done(self, path, counts | {_UNMAPPED + k: v for k, v in unmapped.items()})

    def file_warnings(self, path: Path, counts: dict[str, int]) -> list[str]:
        """The calls without usable coordinates, and the call types without an SDM
        subCategory, of one file."""
        out = []
        none, unusable = counts.get("none", 0), counts.get("unusable", 0)
        if none or unusable:
            out.append(f"{path.name}: {none + unusable} calls without usable coordinates kept "
                       f"with an empty location ({none} without any, {unusable} zero, out of "
                       "range or unreadable; those are kept in _extra); analyses that need a "
                       "position leave them out")
        unmapped = {k[len(_UNMAPPED):]: v for k, v in counts.items() if k.startswith(_UNMAPPED)}
        if unmapped:
            top = sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            out.append(f"{path.name}: {sum(unmapped.values())} calls of {len(unmapped)} call "
                       "types have no Smart Data Models subCategory (e.g. "
                       + ", ".join(f"{k!r} {v}" for k, v in top) + "): kept in callType, "
                       "subCategory left empty (the keyword table is in docs/safety.md)")
        return out


def _column(t: pa.Table, layout: Layout, field: str) -> pa.Array | None:
    name = layout.fields.get(field)
    return t.column(name).combine_chunks() if name is not None else None


def _issued_text(t: pa.Table, layout: Layout) -> pa.Array:
    """The call time as one text: dateIssued, or issuedDate's date part + issuedTime."""
    full = _column(t, layout, "dateIssued")
    day = _column(t, layout, "issuedDate")
    if day is None:
        assert full is not None
        return full
    date_part = pc.replace_substring_regex(day, r"^\s*([^\sT]+)(?:[\sT].*)?$", r"\1")
    clock = _column(t, layout, "issuedTime")
    joined = (pc.binary_join_element_wise(date_part, clock, " ") if clock is not None
              else date_part)
    return pc.if_else(pc.is_null(full), joined, full) if full is not None else joined


def _convert(t: pa.Table, p: Problems, path: Path, layout: Layout,
             counts: dict[str, int], unmapped: dict[str, int]) -> Batch:
    n = t.num_rows
    times: dict[str, pa.Array] = {}
    for field in _TIME_FIELDS:
        text = _issued_text(t, layout) if field == "dateIssued" else _column(t, layout, field)
        if text is None:
            continue
        values, unreadable = parse_times(text, layout.zone, need_time=True)
        times[field] = values
        p.flag(unreadable, _bad_timestamp(field, text))
    rows: dict[str, Any] = {"id": _ids(t, layout)}
    rows["observed_at"] = times["dateIssued"]
    rows.update(times)
    _order_checks(times, p)
    rows["responseTime"] = _response(t, layout, times, p)
    lon, lat, unusable = _location(t, layout, counts)
    rows["lon"], rows["lat"] = lon, lat
    for field in ("callType", "description", "areaServed", "priority", "severity",
                  "category"):
        col = _column(t, layout, field)
        if col is not None:
            rows[field] = blank_to_null(unescape_html(col))
    if "callType" in rows:
        rows["subCategory"] = sdm_subcategory(rows["callType"], unmapped)
    if "category" not in rows:
        rows["category"] = pa.repeat(pa.scalar("security"), n)
    if "severity" not in rows and "priority" in rows:
        rows["severity"] = _severity(rows["priority"])
    address = _column(t, layout, "address")
    if address is not None:
        rows["address"] = postal_address(blank_to_null(unescape_html(address)))
    rows["alertSource"] = pa.repeat(pa.scalar(layout.alert_source), n)
    rows["source"] = pa.repeat(pa.scalar(path.name), n)
    rows["_time_index"] = pa.repeat(pa.scalar("dateIssued"), n)
    rows["_extra"] = _extra(t, layout, unusable)
    rows["_record"] = p.record_column()
    rows["_raw"] = p.raw_column()
    return Batch(TYPE, pa.table(rows), str(path), n, typed_bad=p.rows)


def sdm_subcategory(call_type: pa.Array, unmapped: dict[str, int] | None = None) -> pa.Array:
    """SDM's Alert subCategory of each call type by :data:`SUBCATEGORY_KEYWORDS` (null where
    none applies, or no call type); ``unmapped`` counts the calls of each call type left
    without one. Python
    sees each distinct call type once."""
    encoded = pc.dictionary_encode(call_type)
    types = encoded.dictionary.to_pylist()
    sub = pa.array([_subcategory_of(t) for t in types], pa.string())
    out = pc.take(sub, encoded.indices)
    if unmapped is not None:
        left = pc.and_(pc.is_valid(call_type), pc.is_null(out))
        counts = pc.value_counts(pc.filter(call_type, left))
        for value, n in zip(counts.field("values").to_pylist(),
                            counts.field("counts").to_pylist(), strict=True):
            unmapped[value] = unmapped.get(value, 0) + n
    return out


def _subcategory_of(call_type: str) -> str | None:
    folded = call_type.strip().casefold()
    exact = _sdm_enum().get(folded)
    if exact is not None:
        return exact
    return next((sub for sub, words in SUBCATEGORY_KEYWORDS
                 if any(w in folded for w in words)), None)


@cache
def _sdm_enum() -> dict[str, str]:
    """SDM's subCategory values (schemas/Alert.json) by their case-folded text."""
    from hubctl.registry import get_type

    values = get_type(TYPE).attributes["subCategory"].value_schema["enum"]
    return {v.casefold(): v for v in values}


def _bad_timestamp(field: str, text: pa.Array) -> Callable[[int], Reason]:
    return lambda i: reason("bad-timestamp", field, value=text[i].as_py())


def _ids(t: pa.Table, layout: Layout) -> pa.Array:
    """urn:ngsi-ld:Alert:<source>:<case>; without a case column a digest of the whole row."""
    case = _column(t, layout, "id")
    if case is None:
        texts = pc.binary_join_element_wise(
            *[pc.fill_null(t.column(c).combine_chunks(), "") for c in t.column_names], "\x1f")
        case = pa.array([hashlib.blake2b(s.encode(), digest_size=10).hexdigest()
                         for s in texts.to_pylist()], pa.string())
    else:
        case = blank_to_null(pc.utf8_trim_whitespace(case))
    return urns(TYPE, case, layout.source)


def _order_checks(times: dict[str, pa.Array], p: Problems) -> None:
    """Dispatch and arrival before the call are end-before-start rejects."""
    start = times["dateIssued"]
    for field in ("dateDispatched", "dateArrived"):
        if field in times:
            p.flag(pc.less(times[field], start), _early(field, times[field], start))


def _early(field: str, end: pa.Array, start: pa.Array) -> Callable[[int], Reason]:
    return lambda i: reason("end-before-start", field, value=end[i].as_py(),
                            start=start[i].as_py())


def _response(t: pa.Table, layout: Layout, times: dict[str, pa.Array],
              p: Problems) -> pa.Array:
    """Seconds from the call to arrival; the source's own figure where it gives one."""
    n = t.num_rows
    if "dateArrived" in times:
        delta = pc.subtract(pc.cast(times["dateArrived"], pa.int64()),
                            pc.cast(times["dateIssued"], pa.int64()))
        computed = pc.divide(pc.cast(delta, pa.float64()), 1e6)
        computed = pc.if_else(pc.less(computed, 0.0), pa.scalar(None, pa.float64()), computed)
    else:
        computed = pa.nulls(n, pa.float64())
    given = _column(t, layout, "responseTime")
    if given is None:
        return computed
    values, unreadable = parse_numbers(given)
    p.flag(unreadable, type_error("responseTime", given, "number"))
    return pc.if_else(pc.is_null(values), computed, values)


def _location(t: pa.Table, layout: Layout,
              counts: dict[str, int]) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(lon, lat, mask of present-but-unusable positions); counts the calls without one."""
    n = t.num_rows
    lon_text, lat_text = _column(t, layout, "lon"), _column(t, layout, "lat")
    text = _column(t, layout, "location")
    lon, lat, present = coordinates(text, lon_text, lat_text, n)
    usable = pc.is_valid(lon)
    unusable = pc.and_(present, pc.invert(usable))
    counts["none"] += int(pc.sum(pc.invert(present)).as_py() or 0)
    counts["unusable"] += int(pc.sum(unusable).as_py() or 0)
    return lon, lat, unusable


def _severity(priority: pa.Array) -> pa.Array:
    """SDM severity from a 112 code such as 'C1', '코드1', 'code 1' or '1'."""
    digit = pc.extract_regex(pc.fill_null(priority, ""),
                             r"^\s*(?:[Cc]|[Cc]ode|코드)?\s*(?P<d>[0-4])\s*$")
    d = pc.struct_field(digit, "d")
    return pc.take(pa.array(list(_SEVERITY.values())),
                   pc.index_in(d, value_set=pa.array(list(_SEVERITY))))


def _extra(t: pa.Table, layout: Layout, unusable: pa.Array) -> pa.Array:
    """Unmapped columns, and the position columns of unusable positions, as JSON objects."""
    mapped = set(layout.fields.values())
    position = [layout.fields[f] for f in ("location", "lat", "lon") if f in layout.fields]
    parts: list[tuple[str, pa.Array]] = [
        (c, t.column(c).combine_chunks()) for c in t.column_names if c not in mapped]
    empty = pa.scalar(None, pa.string())
    parts += [(c, pc.if_else(unusable, t.column(c).combine_chunks(), empty)) for c in position]
    return extra_json(parts, t.num_rows)


ADAPTER = Calls()
