"""One exported table: its snapshot, its published rows (privacy rules and filters applied) as
a view on the export's DuckDB connection, and the description of each published column."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from hubctl.duck import quote_ident, scan_sql
from hubctl.errors import UsageError
from hubctl.export.publish import BUCKETS, Rules, grid_cells, rules_for, snap_days
from hubctl.export.where import check_where
from hubctl.lake import DERIVED, Lake, Snapshot
from hubctl.registry import EntityType, registry

__all__ = ["Column", "Filters", "Published", "needs_sort", "publish_table", "resolve_label"]


@dataclass(frozen=True)
class Filters:
    """The row filters of one export."""

    since: datetime | None = None
    until: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    where: str | None = None


@dataclass
class Column:
    """One published column: its DuckDB type and what the schema says about it."""

    name: str
    duck: str
    description: str = ""
    unit: str | None = None
    constraints: dict[str, Any] = field(default_factory=dict)
    role: str = ""  # json | geometry | list | lon | lat | ""


@dataclass
class Published:
    """A table as it is published (``view`` is a view on the export's connection)."""

    label: str  # AirQualityObserved | derived.patrol_points_hotspots
    snapshot: Snapshot
    entity: EntityType | None
    mode: str  # rows | grid | 15/15 | derived
    view: str
    columns: list[Column]
    key: list[str]
    rows: int = 0
    rules: list[str] = field(default_factory=list)
    suppression: dict[str, int] = field(default_factory=dict)
    filters: list[str] = field(default_factory=list)
    span: tuple[datetime | None, datetime | None] = (None, None)
    nullable_ints: set[str] = field(default_factory=set)
    per_day: list[tuple[int, int]] = field(default_factory=list)  # (days since 1970, rows)
    bbox: tuple[float, float, float, float] | None = None

    @property
    def stem(self) -> str:
        """File name stem of its data files."""
        return self.label

    @property
    def geo(self) -> str | None:
        """How its rows are located: ``point`` (lon/lat), a geometry column's name, or None."""
        names = {c.name for c in self.columns}
        if {"lon", "lat"} <= names and "geometry" not in names:
            return "point"
        return next((c.name for c in self.columns if c.role == "geometry"), None)


def resolve_label(lake: Lake, label: str) -> str:
    """The lake path of ``label``; UnknownTable-like UsageError listing what exists."""
    if label in registry() and lake.exists(label):
        return label
    for pipeline, table in lake.derived_names():
        if label == f"{DERIVED}.{pipeline}_{table}":
            return f"{DERIVED}/{pipeline}/{table}"
    raise UsageError(f"the lake {lake.root} has no table {label!r} to export",
                     hint="entity types and derived.<pipeline>_<table> tables can be exported; "
                          "`hubctl tables` lists them")


def _constraints(et: EntityType, name: str) -> dict[str, Any]:
    attr = et.attributes.get(name)
    if name == "id":
        return {"required": True, "pattern": et.schema["properties"]["id"].get("pattern",
                                                                               "urn:ngsi-ld:.+")}
    if name in ("lon", "lat"):
        lim = 180 if name == "lon" else 90
        return {"minimum": -lim, "maximum": lim}
    if attr is None:
        return {}
    vs = attr.value_schema
    out: dict[str, Any] = {}
    if attr.column.name in ("float64", "int64"):
        out.update({k: vs[k] for k in ("minimum", "maximum") if k in vs})
    if attr.column.name == "string":
        out.update({k: vs[k] for k in ("enum", "minLength", "maxLength") if k in vs})
    return out


def _describe(con: duckdb.DuckDBPyConnection, view: str, et: EntityType | None,
              mode: str) -> list[Column]:
    cols = []
    for name, duck, *_ in con.execute(f"DESCRIBE {quote_ident(view)}").fetchall():
        col = Column(name=name, duck=str(duck))
        attr = et.attributes.get(name) if et is not None else None
        if et is not None and mode == "rows":
            col.constraints = _constraints(et, name)
            if attr is not None:
                col.description, col.unit = attr.description, attr.unit
                col.role = {"json": "json", "geometry": "geometry", "string[]": "list"}.get(
                    attr.column.name, "")
                if attr.kind == "GeoProperty" and attr.column.name in ("json", "geometry"):
                    col.role = "geometry"
            elif name in ("lon", "lat") and et.point is not None:
                col.description = (f"{'longitude' if name == 'lon' else 'latitude'} of "
                                   f"{et.point.name} (WGS 84)")
                col.role = name
            elif name == "id":
                col.description = f"NGSI-LD entity id (urn:ngsi-ld:{et.name}:...)"
            elif name == "observed_at":
                col.description = (f"when the row was observed ({et.time_index or 'snapshot'}),"
                                   " UTC")
        if name == "geometry" and mode == "grid":
            col.role = "geometry"
        if duck.endswith("[]"):
            col.role = "list"
        cols.append(col)
    return cols


def _source(con: duckdb.DuckDBPyConnection, snap: Snapshot, hive: bool, alias: str,
            keep: str | None) -> str:
    """A view over the snapshot's files (typed and empty when it has none); ``keep`` is an
    extra condition (an incremental export's)."""
    if snap.files:
        sql = f"SELECT * FROM {scan_sql(snap.files, hive=hive)} WHERE {keep or 'true'}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(alias)} AS {sql}").fetchall()
    else:
        con.register(f"{alias}_empty", pa.Table.from_batches([], schema=snap.schema))
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(alias)} AS "
                    f"SELECT * FROM {quote_ident(alias + '_empty')}").fetchall()
    return quote_ident(alias)


def _utc(epoch_us: int | None) -> datetime | None:
    return None if epoch_us is None else datetime.fromtimestamp(epoch_us / 1e6, UTC)


def _literal_ts(ts: datetime) -> str:
    return f"TIMESTAMPTZ '{ts.isoformat()}'"


def publish_table(con: duckdb.DuckDBPyConnection, lake: Lake, label: str, snap: Snapshot,
                  filters: Filters, overrides: dict[str, Any], index: int,
                  keep: str | None = None) -> Published:
    """Create the published view of one table on ``con`` and describe it."""
    et = registry().get(label)
    alias = f"__src{index}"
    src = _source(con, snap, hive=et is not None, alias=alias, keep=keep)
    names = set(snap.schema.names)
    applied: list[str] = []
    if et is None:
        mode, rules, inner, key = "derived", None, _derived(snap, names), sorted(
            n for n in snap.schema.names if not n.startswith("_"))
        rule_text = [f"{label}: published as the pipeline wrote it (its own small-cell "
                     "suppression applies); provenance columns left out"]
    else:
        rules = rules_for(et, overrides.get(et.name))
        mode, rule_text = rules.mode, rules.describe(et)
        inner, key = _entity_sql(et, rules), list(et.key)
    since, until = filters.since, filters.until
    if mode in ("grid", "15/15"):
        since, until = snap_days(since, until)
    conds = []
    if "observed_at" in names:
        conds = [f"observed_at >= {_literal_ts(since)}" if since else "",
                 f"observed_at < {_literal_ts(until)}" if until else ""]
        conds = [c for c in conds if c]
        applied += [f"--since {since.isoformat()}"] if since else []
        applied += [f"--until {until.isoformat()}"] if until else []
    elif since or until:
        applied.append("--since/--until not applied: the table has no observed_at")
    suppression: dict[str, int] = {}
    view = f"__pub{index}"
    body = inner.format(src=src, where=" AND ".join(conds) or "true")
    if mode == "grid":
        assert et is not None and rules is not None
        table, suppression = _grid(con, src, body, rules)
        con.register(f"{view}_cells", table)
        body = f"SELECT * FROM {quote_ident(view + '_cells')}"
        key = ["cell", rules.bucket]
    elif mode == "15/15":
        assert rules is not None
        body, suppression = _fifteen(con, body, rules)
        key = [rules.bucket]
    post = []
    cols_now = [r[0] for r in con.execute(f"DESCRIBE {body}").fetchall()]
    if filters.bbox is not None:
        if {"lon", "lat"} <= set(cols_now):
            w, s, e, n = filters.bbox
            post.append(f"lon BETWEEN {w!r} AND {e!r} AND lat BETWEEN {s!r} AND {n!r}")
            applied.append(f"--bbox {w},{s},{e},{n}" + (" (on cell centres)" if mode == "grid"
                                                          else ""))
        else:
            applied.append("--bbox not applied: the table has no lon/lat")
    if filters.where:
        post.append(f"({check_where(filters.where, cols_now, label)})")
        applied.append(f"--where {filters.where}")
    order = ", ".join(quote_ident(k) for k in key) if needs_sort(mode, rules, keep) else None
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS SELECT * FROM ({body}) "
                f"WHERE {' AND '.join(post) or 'true'}"
                + ("" if order is None else f" ORDER BY {order}")).fetchall()
    pub = Published(label=label, snapshot=snap, entity=et, mode=mode, view=view,
                    columns=_describe(con, view, et, mode), key=key, rules=rule_text,
                    suppression=suppression, filters=applied)
    _stats(con, pub)
    return pub


def needs_sort(mode: str, rules: Rules | None, keep: str | None) -> bool:
    """Whether the published rows must be sorted by key to come out in a deterministic order.

    Rows published as stored (entity rows, derived tables) keep the lake's storage order: the
    table version's data files in path order (date partitions), each file's rows as written.
    That order is a function of the table version alone, and DuckDB keeps it through scans,
    projections and filters (``preserve_insertion_order``), so no sort is needed; sorting 5 M
    rows cost more than the rest of the export. Aggregates (grid, 15/15), the window that
    numbers opaque ids and the anti-join of an incremental export do not keep an order: those
    are sorted by key (they are small, or an increment)."""
    return mode not in ("rows", "derived") or keep is not None or bool(
        rules is not None and rules.opaque_id)


def _derived(snap: Snapshot, names: set[str]) -> str:
    cols = ", ".join(quote_ident(n) for n in snap.schema.names if not n.startswith("_"))
    return f"SELECT {cols} FROM {{src}} WHERE {{where}}"


def _entity_sql(et: EntityType, rules: Rules) -> str:
    """SELECT of an entity table's published columns, ``{src}`` and ``{where}`` left open."""
    if rules.mode == "grid":
        return ("SELECT lon, lat, observed_at FROM {src} WHERE lon IS NOT NULL AND "
                "lat IS NOT NULL AND {where}")
    if rules.mode == "15/15":
        cols = [c for c in ("activeEnergyImport", "activeEnergyExport")
                if c in et.attribute_columns()]
        return ("SELECT id, observed_at, " + ", ".join(cols) + " FROM {src} WHERE {where}")
    attrs = [c for c in et.attribute_columns() if c not in rules.drop
             and not (et.point is not None and et.point.name in rules.drop and c in ("lon", "lat"))]
    stamps = {c for a in et.attributes.values() if a.column.name == "timestamp"
              for c, _ in a.columns()} | {"observed_at"}
    parts = []
    for c in ["id", "observed_at", *attrs]:
        q = quote_ident(c)
        if rules.round_hour and c in stamps:
            parts.append(f"date_trunc('hour', {q}) AS {q}")
        else:
            parts.append(q)
    if rules.opaque_id:
        parts[0] = (f"'urn:ngsi-ld:{et.name}:' || strftime(date_trunc('hour', observed_at), "
                    "'%Y%m%dT%H') || '-' || row_number() OVER (PARTITION BY date_trunc('hour', "
                    "observed_at) ORDER BY id, observed_at) AS id")
    return "SELECT " + ", ".join(parts) + " FROM {src} WHERE {where}"


def _grid(con: duckdb.DuckDBPyConnection, src: str, body: str, rules: Rules
          ) -> tuple[pa.Table, dict[str, int]]:
    """Alert counts per grid cell and bucket, anchored like the safety pipelines' grid."""
    from hubctl.pipelines.geo import LocalProjection, projection_for

    box = con.execute(f"SELECT min(lon), max(lon), min(lat), max(lat), count(*) FROM {src} "
                      "WHERE lon IS NOT NULL AND lat IS NOT NULL").fetchall()[0]
    total = con.execute(f"SELECT count(*) FROM {src}").fetchall()[0]
    assert box is not None and total is not None
    empty = pa.table({"ix": pa.array([], pa.int64()), "iy": pa.array([], pa.int64()),
                      "bucket": pa.array([], pa.int64() if rules.bucket == "hour_of_week"
                                         else pa.date32()), "calls": pa.array([], pa.int64())})
    if box[4]:
        proj = projection_for([box[0], box[1]], [box[2], box[3]])
        kx = float(proj.to_xy([proj.lon0 + 1.0], [proj.lat0])[0][0])
        ky = float(proj.to_xy([proj.lon0], [proj.lat0 + 1.0])[1][0])
        counts = con.sql(
            f"SELECT CAST(floor((lon - {proj.lon0!r}) * {kx!r} / {rules.cell_m!r}) AS BIGINT) "
            f"AS ix, CAST(floor((lat - {proj.lat0!r}) * {ky!r} / {rules.cell_m!r}) AS BIGINT) "
            f"AS iy, {BUCKETS[rules.bucket]} AS bucket, count(*) AS calls FROM ({body}) "
            "GROUP BY ALL ORDER BY ALL").to_arrow_table()
    else:
        proj, counts = LocalProjection(0.0, 0.0), empty
    table, report = grid_cells(counts, proj.lon0, proj.lat0, rules.cell_m, rules.k, rules.bucket)
    report["calls_without_position"] = int(total[0]) - int(box[4])
    return table, report


def _fifteen(con: duckdb.DuckDBPyConnection, body: str, rules: Rules
             ) -> tuple[str, dict[str, int]]:
    """Energy totals per bucket that pass the 15/15 rule."""
    cols = [r[0] for r in con.execute(f"DESCRIBE {body}").fetchall()]
    energy = [c for c in ("activeEnergyImport", "activeEnergyExport") if c in cols]
    b = rules.bucket
    per = ", ".join(f"sum({quote_ident(c)}) AS {quote_ident(c)}" for c in energy)
    total = ", ".join(f"sum({quote_ident(c)}) AS {quote_ident(c)}" for c in energy)
    shares = " AND ".join(
        f"coalesce(max({quote_ident(c)}) / nullif(sum({quote_ident(c)}), 0), 0) <= "
        f"{rules.max_share!r}" for c in energy) or "true"
    groups = (f"SELECT {BUCKETS[b].replace('observed_at', 'observed_at')} AS {b}, id, "
              f"count(*) AS readings, {per} FROM ({body}) GROUP BY ALL")
    graded = (f"SELECT {b}, count(*) AS meters, CAST(sum(readings) AS BIGINT) AS readings, "
              f"{total}, "
              f"(count(*) >= {rules.min_customers} AND {shares}) AS ok FROM ({groups}) "
              f"GROUP BY {b}")
    table = con.sql(graded).to_arrow_table()
    ok = table.column("ok").to_pylist()
    report = {"groups_published": sum(1 for v in ok if v),
              "groups_suppressed": sum(1 for v in ok if not v)}
    keep = ", ".join(quote_ident(c) for c in [b, "meters", "readings", *energy])
    return f"SELECT {keep} FROM ({graded}) WHERE ok", report


_DAY_US = 86_400_000_000


def _stats(con: duckdb.DuckDBPyConnection, pub: Published) -> None:
    """Row count, rows per UTC day, time span, bounding box and integer columns with nulls of
    the published rows: one scan, grouped by day when the table has ``observed_at``."""
    names = {c.name for c in pub.columns}
    v = quote_ident(pub.view)
    timed = "observed_at" in names
    span = ("epoch_us(min(observed_at)), epoch_us(max(observed_at))" if timed
            else "NULL, NULL")
    box = "min(lon), min(lat), max(lon), max(lat)" if {"lon", "lat"} <= names else \
        "NULL, NULL, NULL, NULL"
    ints = [c.name for c in pub.columns if c.duck in ("BIGINT", "INTEGER", "SMALLINT")]
    nulls = "".join(f", count(*) - count({quote_ident(c)})" for c in ints)
    day = f"epoch_us(observed_at) // {_DAY_US}" if timed else "NULL"
    groups = con.execute(f"SELECT {day} AS day, count(*), {span}, {box}{nulls} FROM {v} "
                         "GROUP BY ALL ORDER BY day NULLS LAST").fetchall()
    pub.rows = sum(int(g[1]) for g in groups)
    pub.per_day = [(int(g[0]), int(g[1])) for g in groups if g[0] is not None]
    pub.nullable_ints = {c for i, c in enumerate(ints) if any(g[8 + i] for g in groups)}

    def pick(i: int, fold: Any) -> Any:
        values = [g[i] for g in groups if g[i] is not None]
        return fold(values) if values else None

    pub.span = (_utc(pick(2, min)), _utc(pick(3, max)))
    corners = [pick(4, min), pick(5, min), pick(6, max), pick(7, max)]
    if corners[0] is not None:
        pub.bbox = (float(corners[0]), float(corners[1]), float(corners[2]), float(corners[3]))
