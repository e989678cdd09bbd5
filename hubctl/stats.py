"""Per-table statistics for ``hubctl tables``."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.catalog import Catalog
from hubctl.duck import quote_ident
from hubctl.lake import DERIVED, Lake
from hubctl.registry import registry
from hubctl.s3 import LakeRoot, S3Root, total_bytes

__all__ = ["folder_bytes", "human_bytes", "table_stats"]


def table_stats(lake: Lake) -> list[dict[str, Any]]:
    """Rows, distinct ids, attributes, time span, version and last run of every table, then
    the derived tables of pipelines."""
    cat = Catalog(lake)
    types = registry()
    try:
        last_runs = _last_runs(cat)
        out = []
        for name in lake.table_names():
            q = quote_ident(name)
            info: dict[str, Any] = {"table": name, **_described(lake, name)}
            et = types.get(name)
            if et is not None:
                rows, ids, lo, hi = cat.query(
                    f"SELECT count(*), count(DISTINCT id), min(observed_at), max(observed_at) "
                    f"FROM {q}").to_pylist()[0].values()
                info.update(rows=rows, ids=ids, attributes=list(et.attributes),
                            **{"from": lo, "to": hi}, last_run=last_runs.get(name))
            else:
                info["rows"] = cat.query(f"SELECT count(*) AS n FROM {q}").to_pylist()[0]["n"]
            out.append(info)
        for pipeline, table in lake.derived_names():
            path = f"{DERIVED}/{pipeline}/{table}"
            name = f"{DERIVED}.{quote_ident(f'{pipeline}_{table}')}"
            out.append({"table": f"{DERIVED}.{pipeline}_{table}", **_described(lake, path),
                        "rows": cat.query(f"SELECT count(*) AS n FROM {name}"
                                          ).to_pylist()[0]["n"]})
        return out
    finally:
        cat.close()


def _last_runs(cat: Catalog) -> dict[str, str]:
    """The newest run id that wrote each table."""
    if "_runs" not in cat.views:
        return {}
    rows = cat.query("SELECT run_id, tables FROM _runs WHERE status <> 'unchanged' "
                     "ORDER BY started_at").to_pylist()
    import json

    last: dict[str, str] = {}
    for r in rows:
        for table in json.loads(r["tables"] or "{}"):
            last[table] = r["run_id"]
    return last


def _described(lake: Lake, name: str) -> dict[str, Any]:
    """Version and columns of table ``name``, the bytes of its current snapshot's Parquet
    files, and of its folder on disk (older versions kept for time travel until ``hubctl lake
    vacuum``, and the log); the table is opened once (on S3 each open reads the log)."""
    dt = lake.open(name)
    sizes = pa.table(dt.get_add_actions(flatten=True)).column("size_bytes")
    return {"version": dt.version(), "columns": pa.schema(dt.schema()).names,
            "files": len(sizes), "bytes": int(pc.sum(sizes).as_py() or 0),
            "disk_bytes": folder_bytes(lake.path(name))}


def folder_bytes(folder: LakeRoot) -> int:
    """Total size of the files under ``folder`` (or of the objects under an S3 prefix)."""
    if isinstance(folder, S3Root):
        return total_bytes(folder)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(folder)
               for f in names)


def human_bytes(n: int | None) -> str:
    """1234567 -> '1.2 MB'."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
