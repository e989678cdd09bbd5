"""EV charging sessions as CSV (charge point, connector, start, end, energy, site) to
``EVChargingSession``, plus one ``EVChargingStation`` per charge point seen.

Layouts differ by operator, so columns are found through a profile (``--profile``): the
ChargePlace Scotland council exports (Dundee and others: day-first dates, date and time in
separate columns, sessions in progress with no end and no energy), ChargePoint network exports
(Palo Alto, Boulder: month-first dates, durations as hh:mm:ss, coordinates), or a generic one;
``--map COLUMN=FIELD`` names any other column. Without ``--profile`` the header picks one.

A session without an end is kept with status ``open`` (and counted as open); one that ends
before it starts, or has negative energy, is rejected with that reason. Sites get coordinates
from ``--sites FILE`` (site, lat, lon).

Smart Data Models requires of an ``EVChargingStation`` its ``socketType``, ``capacity``
(vehicles charging at once) and ``allowedVehicleType``, which sessions files rarely give:
columns mapped to ``socket_type`` (ChargePoint's ``Plug Type`` is found by name),
``capacity`` and ``vehicle_type`` give them per charge point, and ``--socket-type``,
``--capacity`` and ``--allowed-vehicle-type`` (SDM's enums) fill the charge points the file
leaves without; a station still without one is counted in a warning that it will not
validate against SDM.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit import (
    Places,
    Problems,
    csv_batches,
    fold,
    parse_map,
    parse_times,
    read_places,
    resolve_columns,
    text_column,
    type_error,
    urns,
)
from hubctl.arrowkit import blank, parse_numbers
from hubctl.csvread import CSV_LIMIT_PARAMS, CsvStream, csv_limits, open_csv
from hubctl.errors import InputError
from hubctl.ngsild import entity_id
from hubctl.rejects import reason
from hubctl.types import TIMESTAMP

__all__ = ["ADAPTER", "FIELDS", "PROFILES", "EVSessions", "Profile"]

SESSION, STATION = "EVChargingSession", "EVChargingStation"
FIELDS = ("session", "charge_point", "connector", "start", "start_date", "start_time", "end",
          "end_date", "end_time", "duration", "charging_duration", "energy", "cost", "site",
          "lat", "lon", "operator", "model", "socket_type", "capacity", "vehicle_type")


@dataclass(frozen=True)
class Profile:
    """A published layout: header spellings per field, date formats, the local time zone."""

    name: str
    description: str
    aliases: dict[str, tuple[str, ...]]
    formats: tuple[str, ...]  # strptime formats tried in order ("" = ISO 8601)
    timezone: str
    detect: tuple[str, ...] = ()  # header names (folded) that identify the layout


_GENERIC = {
    "session": ("session_id", "session id", "transaction_id", "transaction id", "event_id",
                "charging event", "plug in event id", "charging session id", "id"),
    "charge_point": ("cp id", "cp_id", "charge_point_id", "charge point id", "charge point",
                     "chargepoint id", "chargepoint", "charger id", "charger", "station_id",
                     "station id", "station", "station name", "evse_id", "evse id", "evse",
                     "device id", "charging point"),
    "connector": ("connector id", "connector_id", "port", "port number", "outlet", "socket",
                  "plug"),
    "start": ("start_time", "start datetime", "start date time", "start timestamp",
              "started", "plug in", "plug_in", "plug in time", "connected",
              "start_date___time", "start date (local)", "session start", "session_start",
              "start date"),
    "start_date": (),
    "start_time": (),
    "end": ("end_time", "end datetime", "end date time", "end timestamp", "ended", "plug out",
            "plug_out", "plug out time", "disconnected", "end_date___time", "session end",
            "session_end", "end date"),
    "end_date": (),
    "end_time": (),
    "duration": ("total duration (hh:mm:ss)", "total_duration__hh_mm_ss_", "total duration",
                 "connected time", "connected_time", "duration (minutes)", "duration mins",
                 "duration_minutes", "plug in duration"),
    "charging_duration": ("charging time (hh:mm:ss)", "charging_time__hh_mm_ss_",
                          "charging time", "charging_time", "charging duration"),
    "energy": ("kwh", "total kwh", "energy (kwh)", "energy__kwh_", "energy_kwh", "energy kwh",
               "kwh delivered", "kwh_delivered", "consumption (kwh)", "consumption",
               "total energy", "energy delivered"),
    "cost": ("fee", "price", "amount", "cost (gbp)", "cost (£)"),
    "site": ("site name", "site_name", "location", "location name", "address", "address 1"),
    "lat": ("latitude",),
    "lon": ("longitude", "lng"),
    "operator": ("group", "org name", "network", "operator name", "operator_name"),
    "model": ("charger model", "equipment", "charger type"),
    "socket_type": ("plug type", "socket type", "connector type"),
    "capacity": (),
    "vehicle_type": (),
}

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("chargeplace-scotland",
            "ChargePlace Scotland council exports (Dundee, Perth & Kinross, Stirling): "
            "'CP ID' (or CP_ID), 'Start Date' DD/MM/YYYY, YYYY-MM-DD or a midnight timestamp "
            "such as 2019-08-31T00:00:00 or 2017/08/31 00:00:00, and 'Start Time' HH:MM[:SS], "
            "'Total kWh', 'Site'.",
            {**_GENERIC, "session": ("charging event", "event id", "session id"),
             "start": (), "end": (),
             "start_date": ("start date",), "start_time": ("start time",),
             "end_date": ("end date",), "end_time": ("end time",)},
            ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "",
             "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%d/%m/%y %H:%M", "%d-%m-%Y %H:%M"),
            "Europe/London", ("cpid", "startdate", "starttime", "totalkwh")),
    Profile("chargepoint",
            "ChargePoint network exports (Palo Alto, Boulder): 'Station Name', 'Start Date' "
            "M/D/YYYY H:MM, 'Total Duration (hh:mm:ss)', 'Charging Time (hh:mm:ss)', "
            "'Energy (kWh)', 'Latitude', 'Longitude'.",
            _GENERIC,
            ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
             "", "%m/%d/%y %H:%M"),
            "America/Los_Angeles", ("chargingtimehhmmss",)),
    Profile("generic", "Any layout with ISO 8601 start and end (UTC unless they carry a "
            "zone); name other columns with --map.", _GENERIC, ("",), "UTC"),
)}
PROFILES["dundee"] = PROFILES["chargeplace-scotland"]


def _station_enum(attribute: str) -> list[str]:
    """SDM's values of a list attribute of schemas/EVChargingStation.json (one file read)."""
    text = resources.files("hubctl.schemas").joinpath(f"{STATION}.json").read_text("utf-8")
    return list(json.loads(text)["properties"][attribute]["properties"]["value"]["items"]["enum"])


SOCKET_TYPES = _station_enum("socketType")
VEHICLE_TYPES = _station_enum("allowedVehicleType")


def _sdm_values(allowed: Sequence[str]) -> Any:
    """A click callback: each value one of SDM's ``allowed`` (any case), spelt as SDM does;
    anything else is a usage error that lists them."""
    by_fold = {a.casefold(): a for a in allowed}

    def check(_ctx: click.Context, param: click.Parameter,
              values: Sequence[str]) -> tuple[str, ...]:
        bad = [v for v in values if v.casefold() not in by_fold]
        if bad:
            raise click.BadParameter(f"{bad[0]!r} is not one of Smart Data Models' values: "
                                     + ", ".join(allowed), param=param)
        return tuple(by_fold[v.casefold()] for v in values)
    return check


#: What SDM requires of a station that sessions files lack: attribute -> the option giving it.
STATION_OPTIONS = {"socketType": "--socket-type", "capacity": "--capacity",
                   "allowedVehicleType": "--allowed-vehicle-type"}
REQUIRED = [["charge_point", "start"], ["charge_point", "start_date", "start_time"],
            ["charge_point", "start_date"]]


@dataclass
class _Stations:
    """Charge points seen so far: first site, operator, model; connectors."""

    site: dict[str, str | None] = field(default_factory=dict)
    operator: dict[str, str | None] = field(default_factory=dict)
    model: dict[str, str | None] = field(default_factory=dict)
    connectors: dict[str, set[str]] = field(default_factory=dict)
    capacity: dict[str, str | None] = field(default_factory=dict)
    socket_types: dict[str, dict[str, None]] = field(default_factory=dict)  # texts, ordered
    vehicle_types: dict[str, dict[str, None]] = field(default_factory=dict)


@dataclass
class _Plan:
    path: Path
    cols: dict[str, str]
    profile: Profile
    tz: str
    fmt: str | None
    sites: Places | None
    stations: _Stations
    open_sessions: int = 0


class EVSessions(Adapter):
    """The ``ev-sessions`` adapter."""

    name = "ev-sessions"
    entity_types = (SESSION, STATION)
    summary = "EV charging sessions CSV (council and network exports) to EVChargingSession."
    example = ("hubctl ingest ev-sessions dundee-ev-charging-sessions.csv --profile dundee "
               "--sites dundee-sites.csv")
    params: Sequence[click.Parameter] = (
        click.Option(["--profile"], type=click.Choice(sorted(PROFILES)), default=None,
                     help="Published layout (default: recognised from the header, else "
                          "generic): " + "; ".join(
                              f"{p.name}: {p.description.rstrip('.')}"
                              for n, p in sorted(PROFILES.items())
                              if n == p.name)),
        click.Option(["--map", "mapping"], multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN as FIELD (repeatable). Fields: " + ", ".join(FIELDS)
                          + "."),
        click.Option(["--sites"], type=click.Path(exists=True, dir_okay=False),
                     help="CSV of sites: site, lat, lon (coordinates for sites by name)."),
        click.Option(["--timezone"], default=None,
                     help="Time zone of times without one (IANA name or +HH:MM; default: the "
                          "profile's, e.g. Europe/London for ChargePlace Scotland)."),
        click.Option(["--date-format"], default=None,
                     help="strptime format of start and end (date and time joined by a space), "
                          "e.g. '%d/%m/%Y %H:%M'; default: the profile's formats."),
        click.Option(["--socket-type", "socket_type"], multiple=True, metavar="TYPE",
                     callback=_sdm_values(SOCKET_TYPES),
                     help="Socket type of the charge points a socket_type column leaves without "
                          "(SDM socketType; repeatable): "
                          + ", ".join(SOCKET_TYPES) + "."),
        click.Option(["--capacity"], type=click.IntRange(min=1), default=None, metavar="N",
                     help="Vehicles that can charge at once at each charge point a capacity "
                          "column leaves without (SDM capacity)."),
        click.Option(["--allowed-vehicle-type", "allowed_vehicle_type"], multiple=True,
                     metavar="TYPE", callback=_sdm_values(VEHICLE_TYPES),
                     help="Vehicle type that can charge where a vehicle_type column gives none "
                          "(SDM allowedVehicleType; repeatable): "
                          + ", ".join(VEHICLE_TYPES) + "."),
    ) + CSV_LIMIT_PARAMS

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Sessions of every input, then the charge points they name."""
        mapping = parse_map(options.get("mapping") or (), FIELDS)
        sites_file = options.get("sites")
        sites = (read_places(Path(sites_file), "site", _GENERIC["site"])
                 if sites_file else None)
        stations = _Stations()
        last: _Plan | None = None
        for path in inputs:
            stream = open_csv(path, limits=csv_limits(options))
            profile = _profile(options.get("profile"), stream.schema.names)
            cols = resolve_columns(path, stream.schema.names, profile.aliases, mapping,
                                   REQUIRED)
            _split_date_time(cols)
            last = _Plan(path, cols, profile, options.get("timezone") or profile.timezone,
                         options.get("date_format"), sites, stations)
            yield from _read_file(last, stream, ctx)
            if last.open_sessions:
                ctx.warn(f"{path.name}: {last.open_sessions} sessions still open (no end): "
                         "kept with status open")
        if last is not None and stations.site:
            yield _station_batch(last, stations, ctx, options)


def _split_date_time(cols: dict[str, str]) -> None:
    """Where a layout has both a start column and a start date column, decide which is which:
    a "Start Date Time" column is the whole timestamp; a "Start Time" beside a "Start Date" is
    the time of day. The same for the end."""
    for which in ("start", "end"):
        day, clock = f"{which}_date", f"{which}_time"
        if which not in cols or day not in cols:
            continue
        if "date" in fold(cols[which]):  # a full timestamp column wins
            cols.pop(day)
            cols.pop(clock, None)
        else:
            cols[clock] = cols.pop(which)


def _profile(name: str | None, header: Sequence[str]) -> Profile:
    if name:
        return PROFILES[name]
    folded = {fold(h) for h in header}
    for profile in PROFILES.values():
        if profile.detect and all(d in folded for d in profile.detect):
            return profile
    return PROFILES["generic"]


def _read_file(plan: _Plan, stream: CsvStream, ctx: ReadContext) -> Iterator[Batch]:
    checked = [False]

    def convert(table: pa.Table, problems: Problems) -> Batch:
        if not checked[0] and table.num_rows:
            checked[0] = _check_dates(plan, table)
        return _convert(plan, table, problems)

    yield from csv_batches(stream, plan.path, SESSION, ctx, convert)


def _check_dates(plan: _Plan, batch: pa.Table) -> bool:
    """Stop when a recognised layout's start column parses in none of the first rows: every
    record would be rejected, and the column or its format is what is wrong, not the data.
    Returns whether the check ran (the first batch with a start value)."""
    head = batch.slice(0, 50)
    text, column = _joined(plan, head, "start")
    if text is None:
        return True
    present = pc.drop_null(pc.if_else(blank(text), None, text))
    if not len(present):
        return False
    _values, bad = _times(plan, present)
    if not pc.all(bad).as_py():
        return True
    tried = plan.fmt if plan.fmt is not None else ", ".join(
        repr(f or "ISO 8601") for f in plan.profile.formats)
    raise InputError(
        f"no start date of the first {len(present)} rows parses ({column} = "
        f"{present[0].as_py()!r}; {plan.profile.name} layout, formats tried: {tried})",
        path=str(plan.path), record="line 2",
        hint="give the format with --date-format (e.g. '%d/%m/%Y %H:%M'), or name the "
             "columns with --map COLUMN=start_date --map COLUMN=start_time")


def _joined(plan: _Plan, batch: pa.RecordBatch, which: str) -> tuple[pa.Array | None, str]:
    """The start or end text of each row (date and time joined when they are separate)."""
    cols = plan.cols
    date_col, time_col = cols.get(f"{which}_date"), cols.get(f"{which}_time")
    if which in cols:
        if time_col is None:
            return text_column(batch, cols[which]), cols[which]
        date_col = cols[which]  # a "Start Date" column with a "Start Time" beside it
    if date_col is None:
        return None, which
    date = pc.utf8_trim_whitespace(text_column(batch, date_col))
    if time_col is None:
        return date, date_col
    # a date column that carries a midnight time (2019-08-31T00:00:00, 2017/08/31 00:00:00)
    # beside a separate time column: the date part combines with the time column
    date = pc.replace_substring_regex(date, _MIDNIGHT, "")
    time = pc.utf8_trim_whitespace(text_column(batch, time_col))
    both = pc.binary_join_element_wise(date, time, " ")
    return pc.if_else(blank(date), pa.scalar(None, pa.string()), both), f"{date_col}+{time_col}"


_MIDNIGHT = r"(?:T|\s+)00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?$"


def _times(plan: _Plan, text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Parse with --date-format, else with the first profile format that reads every
    present value of this batch (falling back to the one that reads the most)."""
    if plan.fmt is not None:
        return parse_times(text, plan.tz, plan.fmt or None)
    best: tuple[pa.Array, pa.Array] | None = None
    best_bad = len(text) + 1
    for fmt in plan.profile.formats:
        values, bad = parse_times(text, plan.tz, fmt or None)
        count = pc.sum(bad).as_py() or 0
        if count == 0:
            plan.fmt = fmt  # the layout's format: keep it for the rest of the file
            return values, bad
        if count < best_bad:
            best, best_bad = (values, bad), count
    assert best is not None
    return best


_HMS = r"^(?P<h>\d+):(?P<m>\d{1,2})(?::(?P<s>\d{1,2}(?:\.\d+)?))?$"


def _durations(text: pa.Array | None) -> tuple[pa.Array | None, pa.Array | None]:
    """hh:mm[:ss] (or a bare number of minutes) -> duration, and a bad-cell mask."""
    if text is None:
        return None, None
    trimmed = pc.utf8_trim_whitespace(text)
    parts = pc.extract_regex(trimmed, _HMS)
    hours = pc.cast(pc.struct_field(parts, "h"), pa.float64())
    minutes = pc.cast(pc.struct_field(parts, "m"), pa.float64())
    seconds = pc.fill_null(pc.cast(pc.if_else(
        pc.equal(pc.struct_field(parts, "s"), ""), None, pc.struct_field(parts, "s")),
        pa.float64()), 0.0)
    hms = pc.add(pc.add(pc.multiply(hours, 3600.0), pc.multiply(minutes, 60.0)), seconds)
    plain, bad_plain = parse_numbers(pc.if_else(pc.is_valid(parts), None, trimmed))
    total = pc.coalesce(hms, pc.multiply(plain, 60.0))
    missing = blank(text)
    bad = pc.and_(pc.invert(missing), pc.is_null(total))
    micros = pc.cast(pc.round(pc.multiply(total, 1e6)), pa.int64())
    return pc.cast(micros, pa.duration("us")), pc.fill_null(bad, False)


def _convert(plan: _Plan, batch: pa.Table, problems: Problems) -> Batch:
    n = batch.num_rows
    cols = plan.cols
    start_text, start_field = _joined(plan, batch, "start")
    end_text, end_field = _joined(plan, batch, "end")
    assert start_text is not None
    start, bad_start = _times(plan, start_text)
    if end_text is not None:
        end, bad_end = _times(plan, end_text)
    else:
        end, bad_end = pa.nulls(n, TIMESTAMP), pa.repeat(pa.scalar(False), n)
    total, bad_total = _durations(text_column(batch, cols.get("duration")))
    charging, bad_charging = _durations(text_column(batch, cols.get("charging_duration")))
    if total is not None:  # an end from the duration where the file gives no end
        end = pc.if_else(pc.is_null(end), pc.add(start, total), end)
    charging_end = pc.add(start, charging) if charging is not None else pa.nulls(n, TIMESTAMP)
    energy, bad_energy = _numbers(batch, cols.get("energy"), n)
    cost, bad_cost = _numbers(batch, cols.get("cost"), n)
    cp = _trimmed(batch, cols["charge_point"])
    problems.flag(blank(cp), lambda i: reason("missing-required", cols["charge_point"]))
    problems.flag(bad_start, lambda i: reason("bad-timestamp", start_field,
                                              value=start_text[i].as_py()))
    problems.flag(pc.and_(pc.is_null(start), pc.invert(bad_start)),
                  lambda i: reason("missing-required", start_field))
    if end_text is not None:
        problems.flag(bad_end, lambda i: reason("bad-timestamp", end_field,
                                                value=end_text[i].as_py()))
    for bad, name in ((bad_total, "duration"), (bad_charging, "charging_duration")):
        if bad is not None:
            problems.flag(bad, type_error(cols[name], batch.column(cols[name]), "hh:mm:ss"))
    problems.flag(bad_energy, lambda i: reason(
        "type-error", cols["energy"], value=batch.column(cols["energy"])[i].as_py(),
        expected="number"))
    problems.flag(bad_cost, lambda i: reason(
        "type-error", cols["cost"], value=batch.column(cols["cost"])[i].as_py(),
        expected="number"))
    problems.flag(pc.less(end, start), lambda i: reason(
        "end-before-start", end_field, value=end[i].as_py().isoformat(),
        start=start[i].as_py().isoformat()))
    problems.flag(pc.less(energy, 0), lambda i: reason(
        "negative-value", cols.get("energy", "energy"), value=energy[i].as_py()))
    rows = _rows(plan, batch, problems.keep(), cp, start, end, charging_end, energy, cost)
    plan.open_sessions += int(pc.sum(pc.equal(rows.column("status"), "open")).as_py() or 0)
    return Batch(SESSION, rows, str(plan.path), n, rejects=problems.rejects())


def _rows(plan: _Plan, batch: pa.RecordBatch, keep: pa.Array, cp: pa.Array, start: pa.Array,
          end: pa.Array, charging_end: pa.Array, energy: pa.Array, cost: pa.Array) -> pa.Table:
    cols = plan.cols

    def pick(a: pa.Array) -> pa.Array:
        return a.filter(keep)

    cp, start, end, charging_end, energy, cost = (pick(a) for a in (
        cp, start, end, charging_end, energy, cost))
    n = len(cp)
    connector = (pick(_trimmed(batch, cols["connector"])) if "connector" in cols
                 else pa.repeat(pa.scalar("1"), n))
    connector = pc.if_else(blank(connector), "1", connector)
    site = pick(_trimmed(batch, cols["site"])) if "site" in cols else pa.nulls(n, pa.string())
    if "session" in cols:
        session = pick(_trimmed(batch, cols["session"]))
    else:  # charge point, connector and start identify a session
        seconds = pc.cast(pc.cast(start, pa.int64()), pa.timestamp("us", tz="UTC"))
        stamp = pc.utf8_slice_codeunits(pc.strftime(seconds, format="%Y%m%dT%H%M%S"), 0, 15)
        session = pc.binary_join_element_wise(cp, connector, stamp, "-")
    lon, lat = _coordinates(plan, batch, keep, site)
    _note_stations(plan, batch, keep, cp, connector, site)
    status = pc.if_else(pc.is_null(end), "open", "closed")
    return pa.table({
        "id": urns(SESSION, session),
        "observed_at": start, "startDateTime": start, "endDateTime": end,
        "chargingEndDateTime": charging_end, "energy": energy, "cost": cost,
        "status": status, "connector": connector,
        "refEVChargingStation": urns(STATION, cp),
        "site": site, "lon": lon, "lat": lat,
        "source": pa.repeat(pa.scalar(f"ev-sessions:{plan.path.name}"), n),
        "_time_index": pa.repeat(pa.scalar("startDateTime"), n),
    })


def _coordinates(plan: _Plan, batch: pa.RecordBatch, keep: pa.Array,
                 site: pa.Array) -> tuple[pa.Array, pa.Array]:
    cols = plan.cols
    n = len(site)
    lon, lat = pa.nulls(n, pa.float64()), pa.nulls(n, pa.float64())
    if "lat" in cols and "lon" in cols:
        lat = parse_numbers(text_column(batch, cols["lat"]))[0].filter(keep)
        lon = parse_numbers(text_column(batch, cols["lon"]))[0].filter(keep)
    if plan.sites is not None:
        idx = plan.sites.lookup(site)
        lon = pc.coalesce(lon, pc.take(plan.sites.lon, idx))
        lat = pc.coalesce(lat, pc.take(plan.sites.lat, idx))
    return lon, lat


def _note_stations(plan: _Plan, batch: pa.RecordBatch, keep: pa.Array, cp: pa.Array,
                   connector: pa.Array, site: pa.Array) -> None:
    """Remember each charge point's first site, operator and model, and its connectors
    (grouped in Arrow: Python sees one row per charge point and connector)."""
    cols, st = plan.cols, plan.stations
    n = len(cp)
    none = pa.nulls(n, pa.string())
    table = pa.table({
        "cp": cp, "connector": connector, "site": site,
        "operator": _trimmed(batch, cols["operator"]).filter(keep) if "operator" in cols
        else none,
        "model": _trimmed(batch, cols["model"]).filter(keep) if "model" in cols else none,
        "capacity": (_trimmed(batch, cols["capacity"]).filter(keep) if "capacity" in cols
                     else none),
    })
    firsts = table.group_by("cp", use_threads=False).aggregate(
        [("site", "first"), ("operator", "first"), ("model", "first"), ("capacity", "first")])
    for cp_id, site_name, operator, model, capacity in zip(*(firsts.column(c).to_pylist() for c in (
            "cp", "site_first", "operator_first", "model_first", "capacity_first")), strict=True):
        if cp_id not in st.site:
            st.site[cp_id], st.operator[cp_id], st.model[cp_id] = site_name, operator, model
            st.capacity[cp_id] = capacity
            st.connectors[cp_id] = set()
            st.socket_types[cp_id], st.vehicle_types[cp_id] = {}, {}
    pairs = table.group_by(["cp", "connector"]).aggregate([])
    for cp_id, plug in zip(pairs.column("cp").to_pylist(), pairs.column("connector").to_pylist(),
                           strict=True):
        st.connectors[cp_id].add(plug)
    for name, seen in (("socket_type", st.socket_types), ("vehicle_type", st.vehicle_types)):
        if name in cols:
            texts = pa.table({"cp": cp, "v": _trimmed(batch, cols[name]).filter(keep)})
            pairs = texts.filter(pc.invert(blank(texts.column("v")))).group_by(
                ["cp", "v"], use_threads=False).aggregate([])
            for cp_id, text in zip(pairs.column("cp").to_pylist(),
                                   pairs.column("v").to_pylist(), strict=True):
                seen[cp_id][text] = None


def _station_batch(plan: _Plan, st: _Stations, ctx: ReadContext,
                   options: dict[str, Any]) -> Batch:
    """One EVChargingStation per charge point; derived rows, so they count no input records.
    SDM's socketType, capacity and allowedVehicleType come from the options, the same for
    every charge point; a warning names those missing."""
    cps = sorted(st.site)
    sites = pa.array([st.site[c] for c in cps], pa.string())
    lon, lat = pa.nulls(len(cps), pa.float64()), pa.nulls(len(cps), pa.float64())
    if plan.sites is not None:
        idx = plan.sites.lookup(sites)
        lon, lat = pc.take(plan.sites.lon, idx), pc.take(plan.sites.lat, idx)
        missing = sorted({s for s, i in zip(sites.to_pylist(), idx.to_pylist(), strict=True)
                          if i is None and s})
        if missing:
            ctx.warn(f"{len(missing)} sites have no coordinates in the sites file, e.g. "
                     f"{missing[0]!r}")
    n = len(cps)
    rows = pa.table({
        "id": pa.array([entity_id(STATION, c) for c in cps], pa.string()),
        "observed_at": pa.repeat(pa.scalar(ctx.arrival, TIMESTAMP), n),
        "name": pa.array(cps, pa.string()), "site": sites, "lon": lon, "lat": lat,
        "operator": pa.array([st.operator[c] for c in cps], pa.string()),
        "description": pa.array([st.model[c] for c in cps], pa.string()),
        "socketNumber": pa.array([len(st.connectors[c]) for c in cps], pa.int64()),
        "source": pa.repeat(pa.scalar("ev-sessions"), n),
        "_time_index": pa.repeat(pa.scalar("arrival"), n),
        "_records": pa.array(np.zeros(n, dtype=np.int64)),
    })
    required = _sdm_required(plan, st, cps, options, ctx)
    for name, column in required.items():
        if column.null_count < n:
            rows = rows.append_column(name, column)
    missing = [a for a, column in required.items() if column.null_count]
    if missing:
        lacking = int(pc.sum(reduce(pc.or_, [pc.is_null(required[a]) for a in missing])).as_py())
        ctx.warn(f"{lacking} of {n} charging stations will not validate against Smart Data "
                 f"Models' EVChargingStation: it requires {' and '.join(missing)}, which the "
                 "file does not give for them; supply them with " + ", ".join(
                     f"{STATION_OPTIONS[a]} {'N' if a == 'capacity' else 'TYPE'}"
                     for a in missing) + " (for every charge point the file leaves without)")
    return Batch(STATION, rows, str(plan.path), 0)


#: Spellings of SDM's socket types seen in exports, by their folded form.
_SOCKET_SYNONYMS = {"ccs": "CCS/SAE", "ccs1": "CCS/SAE", "ccs2": "CCS/SAE",
                    "combo": "CCS/SAE", "saecombo": "CCS/SAE", "j1772combo": "CCS/SAE",
                    "type1": "J-1772", "saej1772": "J-1772"}


def _sdm_required(plan: _Plan, st: _Stations, cps: list[str], options: dict[str, Any],
                  ctx: ReadContext) -> dict[str, pa.Array]:
    """socketType, capacity and allowedVehicleType of each station: from the mapped columns
    (texts matched to SDM's values by :func:`fold`), else from the options; null where
    neither gives one. Texts that match no SDM value are left out, named in a warning."""
    out: dict[str, pa.Array] = {}
    for name, key, seen, allowed, synonyms in (
            ("socketType", "socket_type", st.socket_types, SOCKET_TYPES, _SOCKET_SYNONYMS),
            ("allowedVehicleType", "allowed_vehicle_type", st.vehicle_types, VEHICLE_TYPES,
             {})):
        by_fold = {**{fold(a): a for a in allowed}, **synonyms}
        given = list(dict.fromkeys(options.get(key) or ())) or None
        values: list[list[str] | None] = []
        unknown: dict[str, None] = {}
        for c in cps:
            found = [by_fold.get(fold(t)) for t in seen.get(c, {})]
            unknown.update({t: None for t, f in zip(seen.get(c, {}), found, strict=True)
                            if f is None})
            values.append(list(dict.fromkeys(f for f in found if f)) or given)
        if unknown:
            ctx.warn(f"{plan.path.name}: {len(unknown)} {key.replace('_', ' ')}s are none of "
                     f"Smart Data Models' values and are left out (e.g. {next(iter(unknown))!r}"
                     f"); SDM's: {', '.join(allowed)}")
        out[name] = pa.array(values, pa.list_(pa.string()))
    capacity = [st.capacity.get(c) for c in cps]
    numbers, bad = parse_numbers(pa.array(capacity, pa.string()))
    whole = pc.and_(pc.equal(numbers, pc.floor(numbers)), pc.greater_equal(numbers, 1))
    if pc.any(pc.or_(bad, pc.invert(pc.fill_null(whole, True)))).as_py():
        ctx.warn(f"{plan.path.name}: capacities that are not whole numbers of at least 1 are "
                 "left out")
    numbers = pc.if_else(pc.fill_null(whole, False), numbers, None)
    fallback = pa.scalar(options.get("capacity"), pa.int64())
    out["capacity"] = pc.fill_null(pc.cast(numbers, pa.int64()), fallback)
    return {a: out[a] for a in STATION_OPTIONS}


def _trimmed(batch: pa.RecordBatch, column: str) -> pa.Array:
    return pc.utf8_trim_whitespace(text_column(batch, column))


def _numbers(batch: pa.RecordBatch, column: str | None, n: int) -> tuple[pa.Array, pa.Array]:
    if column is None:
        return pa.nulls(n, pa.float64()), pa.repeat(pa.scalar(False), n)
    text = pc.replace_substring_regex(text_column(batch, column), r"^\s*[£$€₩]", "")
    return parse_numbers(text)


ADAPTER = EVSessions()
