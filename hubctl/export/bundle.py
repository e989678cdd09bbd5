"""``hubctl export``: write one open-data bundle from lake snapshots, and record it in the
``_exports`` ledger.

The bundle is a function of the table versions and the options only: rows in the lake's
storage order (or key order for aggregates, see :func:`.tables.needs_sort`), file names from
table names, dates from the versions' commit times, no blank nodes in the RDF, a
zip with fixed entry times. The same lake versions and options give the same bytes, and
``--as-of`` rebuilds an older bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hubctl.duck import connect, scan_sql
from hubctl.errors import HubError, UsageError
from hubctl.export import writers
from hubctl.export.docs import index_html, readme
from hubctl.export.metadata import BundleFile, BundleMeta, datapackage, dcat_graph, serialise
from hubctl.export.tables import Filters, Published, publish_table, resolve_label
from hubctl.lake import DERIVED, Lake, Snapshot
from hubctl.locks import hold
from hubctl.registry import registry
from hubctl.types import TIMESTAMP

__all__ = ["EXPORTS", "ExportRequest", "all_tables", "export_bundle", "last_export"]

EXPORTS = "_exports"
EXPORTS_SCHEMA = pa.schema([
    ("export_id", pa.string()), ("name", pa.string()), ("tables", pa.string()),
    ("versions", pa.string()), ("options", pa.string()), ("checksums", pa.string()),
    ("rows", pa.string()), ("bundle", pa.string()), ("started_at", TIMESTAMP),
    ("finished_at", TIMESTAMP), ("status", pa.string()),
])
_PLACEHOLDER_BASE = "https://bundle.invalid/"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class ExportRequest:
    """Everything one export needs (hub.toml and the command line already merged)."""

    name: str
    tables: list[str]
    to: Path
    meta: BundleMeta
    filters: Filters = field(default_factory=Filters)
    as_of: dict[str, int | datetime] = field(default_factory=dict)  # "" = every table
    since_last: bool = False
    zip: bool = False
    privacy: dict[str, Any] = field(default_factory=dict)
    shapes: Path | None = None
    formats: tuple[str, ...] = writers.FORMATS

    def options(self) -> dict[str, Any]:
        """The options that shape the bundle's content (recorded in the ledger)."""
        f = self.filters
        return {"since": f.since.isoformat() if f.since else None,
                "until": f.until.isoformat() if f.until else None,
                "bbox": list(f.bbox) if f.bbox else None, "where": f.where,
                "since_last": self.since_last, "formats": list(self.formats),
                "privacy": self.privacy, "licence": self.meta.licence}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ledger_row(row: dict[str, Any]) -> pa.Table:
    """One ``_exports`` row as an Arrow table, made by DuckDB: ``pa.array`` on Python values
    imports pandas, which costs an export of millions of rows 5-10 % of its time."""
    text = [v.isoformat() if isinstance(v, datetime) else v for v in row.values()]
    cols = ", ".join(f"CAST(? AS {'TIMESTAMPTZ' if f.type == TIMESTAMP else 'VARCHAR'}) AS "
                     f"{f.name}" for f in EXPORTS_SCHEMA)
    assert list(row) == EXPORTS_SCHEMA.names
    con = connect()
    try:
        return con.sql(f"SELECT {cols}", params=text).to_arrow_table().cast(EXPORTS_SCHEMA)
    finally:
        con.close()


def last_export(lake: Lake, name: str) -> dict[str, Any] | None:
    """The newest finished export of ``name`` from the ``_exports`` ledger, or None."""
    if not lake.exists(EXPORTS):
        return None
    snap = lake.snapshot(EXPORTS)
    if not snap.files:
        return None
    con = connect()
    try:
        rows = con.execute(f"SELECT versions, export_id FROM {scan_sql(snap.files, hive=False)} "
                           "WHERE name = ? AND status = 'ok' ORDER BY finished_at DESC LIMIT 1",
                           [name]).fetchall()
    finally:
        con.close()
    return {"versions": json.loads(rows[0][0]), "export_id": rows[0][1]} if rows else None


def _incremental(lake: Lake, path: str, snap: Snapshot, before: int | None
                 ) -> tuple[Snapshot, str | None]:
    """The part of ``snap`` that is new since version ``before``: rows of files added since,
    less rows that a rewrite only carried over (same key and ingest time)."""
    if before is None:
        return snap, None
    if before == snap.version:
        return Snapshot(snap.name, snap.version, snap.committed_at, [], snap.schema), None
    old = lake.snapshot(path, before)
    added = sorted(set(snap.files) - set(old.files))
    removed = sorted(set(old.files) - set(snap.files))
    if not path.startswith(DERIVED) and removed and added:
        keys = "id, observed_at, _ingested_at"
        return (Snapshot(snap.name, snap.version, snap.committed_at, added, snap.schema),
                f"({keys}) NOT IN (SELECT ({keys}) FROM {scan_sql(removed, hive=True)})")
    return Snapshot(snap.name, snap.version, snap.committed_at, added, snap.schema), None


def _provenance(lake: Lake, con: duckdb.DuckDBPyConnection, pub: Published) -> str:
    """Which runs wrote this table up to its exported version, with their counts."""
    if pub.entity is None:
        return f"pipeline output (derived table version {pub.snapshot.version})"
    if not lake.exists("_runs"):
        return "no run ledger"
    runs = lake.snapshot("_runs")
    if not runs.files:
        return "no run ledger"
    path = f'$."{pub.label}"'
    row = con.execute(
        f"SELECT count(*), string_agg(DISTINCT source, ', ' ORDER BY source), sum(read), "
        f"sum(rejected), min(run_id), max(run_id) FROM {scan_sql(runs.files, hive=False)} "
        "WHERE TRY_CAST(json_extract_string(tables, ?) AS BIGINT) <= ?",
        [path, pub.snapshot.version]).fetchall()[0]
    if row is None or not row[0]:
        return "no recorded run"
    return (f"{row[0]} ingest run(s) from source(s) {row[1]} (runs {row[4]} .. {row[5]}): "
            f"{row[2] or 0:,} records read, {row[3] or 0:,} rejected")


def _write_data(con: duckdb.DuckDBPyConnection, pub: Published, stage: Path,
                formats: tuple[str, ...]) -> list[BundleFile]:
    out = []
    for fmt in writers.FORMATS:
        if fmt not in formats:
            continue
        if fmt == "geojson" and pub.geo is None:
            continue
        if fmt == "ngsi-ld" and (pub.entity is None or pub.mode != "rows"):
            continue
        ext = {"parquet": "parquet", "csv": "csv", "geojson": "geojson",
               "ngsi-ld": "ngsi-ld.jsonl"}[fmt]
        rel = f"data/{pub.stem}.{ext}"
        path = stage / rel
        {"parquet": writers.write_parquet, "csv": writers.write_csv,
         "geojson": writers.write_geojson, "ngsi-ld": writers.write_ngsi_ld}[fmt](con, pub, path)
        out.append(BundleFile(rel, fmt, path.stat().st_size, _sha256(path), pub.label))
    return out


def _check_shacl(stage: Path, shapes: Path | None) -> dict[str, Any]:
    """pyshacl on dcat.ttl: DCAT-AP 3.0.0 shapes+range must conform (else an error);
    shapes-recommended gives the warnings the README lists."""
    if shapes is None:
        return {"checked": False}
    from pyshacl import validate
    from rdflib import Graph

    files = {k: shapes / f"dcat-ap-3.0.0-{k}.ttl" for k in ("shapes", "range",
                                                          "shapes-recommended")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise UsageError(f"DCAT-AP shapes not found: {', '.join(missing)}",
                         hint="--shapes DIR must hold dcat-ap-3.0.0-shapes.ttl, -range.ttl and "
                              "-shapes-recommended.ttl")
    data = Graph().parse(stage / "dcat.ttl", format="turtle",
                         publicID=_PLACEHOLDER_BASE)
    shapes_g = Graph().parse(files["shapes"]).parse(files["range"])
    conforms, _, text = validate(data, shacl_graph=shapes_g, inference="none")
    if not conforms:
        raise HubError("the bundle's dcat.ttl does not conform to DCAT-AP 3.0.0:\n" + str(text),
                       hint="a bug in hubctl's DCAT writer: please report it")
    rec = Graph().parse(files["shapes-recommended"])
    _, results, _ = validate(data, shacl_graph=rec, inference="none")
    from rdflib.namespace import SH
    warnings = sorted({f"{results.value(r, SH.focusNode)}: {results.value(r, SH.resultMessage)}"
                       .replace(_PLACEHOLDER_BASE, "")
                       for r in results.subjects(predicate=SH.resultMessage)})
    return {"checked": True, "conforms": True, "recommended": warnings}


def _finish(stage: Path, to: Path, as_zip: bool) -> Path:
    """Move the staged bundle to ``to`` (a folder), or zip it there reproducibly."""
    if as_zip:
        target = to if to.suffix == ".zip" else to.with_name(to.name + ".zip")
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(q for q in stage.rglob("*") if q.is_file()):
                info = zipfile.ZipInfo(str(p.relative_to(stage)), date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(p, "rb") as src, z.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, target)
        shutil.rmtree(stage)
        return target
    if to.exists():
        if not (to / "datapackage.json").is_file():
            shutil.rmtree(stage)
            raise UsageError(f"{to} exists and is not an export bundle",
                             hint="choose an empty or new folder for --to")
        shutil.rmtree(to)
    os.replace(stage, to)
    return to


def export_bundle(lake: Lake, req: ExportRequest) -> dict[str, Any]:
    """Write the bundle ``req`` describes; returns what was written (for ``--json``).

    Under the lock ``export:NAME``: a second export of the same name at the same time (two
    schedulers, cron and a person) raises LockHeld (exit 75, skipped)."""
    lake.require_root()
    if not req.tables:
        raise UsageError(f"export {req.name!r} names no table",
                         hint="give tables (hubctl export NAME AirQualityObserved ...) or "
                              "declare tables in [exports.NAME] of hub.toml")
    with hold(lake.root, f"export:{req.name}"):
        return _export(lake, req)


def _export(lake: Lake, req: ExportRequest) -> dict[str, Any]:
    started = datetime.now(UTC)
    paths = {label: resolve_label(lake, label) for label in dict.fromkeys(req.tables)}
    previous = last_export(lake, req.name) if req.since_last else None
    to = req.to.resolve()
    to.parent.mkdir(parents=True, exist_ok=True)
    stage = to.parent / f".{to.name}.staging{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "data").mkdir(parents=True)
    con = connect()
    try:
        con.execute("SET memory_limit = '512MB'").fetchall()
        # rows published as stored keep the storage order only with this (the default)
        con.execute("SET preserve_insertion_order = true").fetchall()
        con.execute(f"SET temp_directory = '{stage / '.spill'}'").fetchall()
        pubs: list[Published] = []
        files: list[BundleFile] = []
        for i, (label, path) in enumerate(paths.items()):
            as_of = req.as_of.get(label, req.as_of.get(""))
            snap = lake.snapshot(path, as_of)
            before = (previous or {}).get("versions", {}).get(label) if previous else None
            snap, keep = _incremental(lake, path, snap, before)
            pub = publish_table(con, lake, label, snap, req.filters, req.privacy, i, keep)
            pubs.append(pub)
            files += _write_data(con, pub, stage, req.formats)
        provenance = {p.label: _provenance(lake, con, p) for p in pubs}
    except BaseException:
        con.close()
        shutil.rmtree(stage, ignore_errors=True)
        raise
    con.close()
    shutil.rmtree(stage / ".spill", ignore_errors=True)
    meta = req.meta
    stamps = [p.snapshot.committed_at for p in pubs if p.snapshot.committed_at]
    meta.issued = max(stamps) if stamps else None
    meta.series = req.since_last
    for p in pubs:
        meta.titles.setdefault(p.label, p.label)
        default = (p.entity.description if p.entity else f"Output table of pipeline "
                   f"{p.label.split('.', 1)[1].split('_', 1)[0]}.")
        meta.descriptions.setdefault(p.label, default + " " + " ".join(p.rules))
    base = meta.base_url or _PLACEHOLDER_BASE
    package = datapackage(meta, pubs, files, provenance)
    (stage / "datapackage.json").write_text(
        json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    graph = dcat_graph(meta, pubs, files, provenance, base)
    (stage / "dcat.ttl").write_text(serialise(graph, base, "turtle"), encoding="utf-8")
    (stage / "dcat.jsonld").write_text(serialise(graph, base, "json-ld"), encoding="utf-8")
    shacl = _check_shacl(stage, req.shapes)
    (stage / "README.md").write_text(readme(meta, pubs, files, provenance, shacl),
                                     encoding="utf-8")
    (stage / "index.html").write_text(index_html(meta, pubs, files), encoding="utf-8")
    hashed = {f.path: f.sha256 for f in files}  # data files: hashed once, as written
    sums = sorted((rel, hashed.get(rel) or _sha256(p)) for p in stage.rglob("*")
                  if p.is_file() for rel in [str(p.relative_to(stage))])
    (stage / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sums), encoding="utf-8")
    checksums = dict(sums)
    target = _finish(stage, to, req.zip)
    versions = {p.label: p.snapshot.version for p in pubs}
    rows = {p.label: p.rows for p in pubs}
    export_id = started.strftime("%Y%m%dT%H%M%S%fZ") + f"-{os.getpid()}"
    lake.append(EXPORTS, _ledger_row({
        "export_id": export_id, "name": req.name, "tables": json.dumps(list(paths)),
        "versions": json.dumps(versions, sort_keys=True),
        "options": json.dumps(req.options(), sort_keys=True, default=str),
        "checksums": json.dumps(checksums, sort_keys=True), "rows": json.dumps(rows),
        "bundle": str(target), "started_at": started, "finished_at": datetime.now(UTC),
        "status": "ok"}))
    return {"export_id": export_id, "name": req.name, "bundle": str(target),
            "zip": req.zip, "tables": [
                {"table": p.label, "version": p.snapshot.version, "rows": p.rows,
                 "published_as": p.mode, "privacy": p.rules, "suppressed": p.suppression,
                 "filters": p.filters,
                 "files": [f.path for f in files if f.table == p.label]} for p in pubs],
            "files": [{"path": n, "sha256": h} for n, h in sums],
            "since_last": req.since_last,
            "previous_export": (previous or {}).get("export_id"),
            "shacl": shacl}


def all_tables(lake: Lake) -> list[str]:
    """Every exportable table of the lake: entity types, then derived tables."""
    types = [n for n in lake.table_names() if n in registry()]
    return types + [f"{DERIVED}.{p}_{t}" for p, t in lake.derived_names()]
