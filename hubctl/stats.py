"""Per-table statistics for ``hubctl tables``."""

from __future__ import annotations

from typing import Any

from hubctl.catalog import Catalog
from hubctl.duck import quote_ident
from hubctl.lake import DERIVED, Lake
from hubctl.registry import registry

__all__ = ["table_stats"]


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
            info: dict[str, Any] = {"table": name, "version": lake.open(name).version(),
                                    "columns": lake.schema(name).names}
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
            out.append({"table": f"{DERIVED}.{pipeline}_{table}",
                        "version": lake.open(path).version(),
                        "columns": lake.schema(path).names,
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
