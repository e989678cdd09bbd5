"""``hubctl lake check``: find keys held by more than one row, and keep the last write of each.

hubctl itself never writes a key twice (:meth:`hubctl.lake.Lake.upsert` classifies and commits
under the table's commit lock), but a lake written by an older hubctl, or by another tool, can
hold duplicates. A repair keeps, for each key, the row written last: the newest ``_ingested_at``,
then the newest commit (the file's modification time), then the later row in a file. It rewrites
only the date partitions that hold duplicates (the whole table for static types) in one Delta
commit per table, under the table's commit lock, and records itself in the ledger as a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from hubctl.duck import quote_ident, scan_sql, scratch
from hubctl.lake import Lake
from hubctl.ledger import Run, new_run_id, start_run, write_run
from hubctl.locks import table_commit
from hubctl.registry import EntityType

__all__ = ["SOURCE", "KeyCheck", "check_table", "repair"]

SOURCE = "lake-check"  # the source name of repair runs in the ledger
_EXAMPLES = 5


@dataclass
class KeyCheck:
    """Duplicate keys of one table: how many keys, how many rows beyond one per key, where."""

    table: str
    rows: int = 0
    duplicate_keys: int = 0
    extra_rows: int = 0
    dates: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    repaired: bool = False
    version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def check_table(lake: Lake, et: EntityType) -> KeyCheck:
    """Count the keys of ``et``'s table that more than one row holds."""
    out = KeyCheck(et.name)
    files = lake.files(et.name)
    if not files:
        return out
    keys = ", ".join(quote_ident(k) for k in et.key)
    date = "string_agg(DISTINCT CAST(date AS VARCHAR), ',')" if et.time_series else "NULL"
    con = scratch()
    try:
        (out.rows,) = con.execute(f"SELECT count(*) FROM {scan_sql(files)}").fetchone() or (0,)
        dup = con.execute(f"""
            SELECT {keys}, count(*) AS n, {date} AS dates FROM {scan_sql(files)}
            GROUP BY {keys} HAVING count(*) > 1 ORDER BY {keys}""").fetchall()
    finally:
        con.close()
    out.duplicate_keys = len(dup)
    out.extra_rows = sum(r[len(et.key)] - 1 for r in dup)
    out.dates = sorted({d for r in dup if r[-1] for d in r[-1].split(",")})
    out.examples = [" @ ".join(str(v) for v in r[:len(et.key)]) for r in dup[:_EXAMPLES]]
    return out


def repair(lake: Lake, types: list[EntityType]) -> tuple[list[KeyCheck], Run | None]:
    """Check each table and rewrite those with duplicate keys, one commit per table; the
    ledger gets one run (``lake-check``) when anything was repaired. Returns the checks."""
    checks, run = [], None
    try:
        for et in types:
            with table_commit(lake.root, et.name):  # no upsert between the check and the commit
                found = check_table(lake, et)
                if found.duplicate_keys:
                    if run is None:
                        run = Run(run_id=new_run_id(), source=SOURCE, adapter=SOURCE,
                                  fingerprint=f"{SOURCE}:{datetime.now(UTC).isoformat()}",
                                  inputs=[], options={"repair": True})
                        start_run(lake, run)
                    _rewrite(lake, et, found)
                    _count(run, found)
            checks.append(found)
    except BaseException as exc:
        if run is not None:
            run.status, run.error = "failed", str(exc) or type(exc).__name__
            write_run(lake, run)
        raise
    if run is not None:
        run.status = "ok"
        write_run(lake, run)
    return checks, run


def _count(run: Run, found: KeyCheck) -> None:
    """Every row of a duplicated key was read; one per key kept (updated), the rest removed
    (duplicate): the run reconciles."""
    rows = found.duplicate_keys + found.extra_rows
    run.read += rows
    run.updated += found.duplicate_keys
    run.duplicate += found.extra_rows
    run.tables[found.table] = found.version or 0
    where = f" in {len(found.dates)} date partition(s)" if found.dates else ""
    run.warnings.append(f"{found.table}: kept the last write of {found.duplicate_keys} key(s), "
                        f"removed {found.extra_rows} older row(s){where}")


def _rewrite(lake: Lake, et: EntityType, found: KeyCheck) -> None:
    """Replace the partitions holding duplicates by their rows, one per key (the last write)."""
    dates = found.dates if et.time_series else None
    files = lake.files(et.name, dates)
    schema = lake.schema(et.name)
    adds = lake.file_times(et.name)
    keys = ", ".join(quote_ident(k) for k in et.key)
    cols = ", ".join(f"s.{quote_ident(c)}" for c in schema.names)
    scan = scan_sql(files, hive=et.time_series).replace(
        "union_by_name=true)", "union_by_name=true, filename=true, file_row_number=true)")
    con = scratch()
    try:
        con.register("commits", adds)
        kept = con.sql(f"""
            SELECT {cols} FROM {scan} AS s LEFT JOIN commits AS c ON ends_with(s.filename, c.path)
            QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY s._ingested_at DESC NULLS LAST,
                c.modified DESC NULLS LAST, s.filename DESC, s.file_row_number DESC) = 1
            """).to_arrow_table()
    finally:
        con.close()
    found.version = lake.rewrite(et.name, kept.cast(schema), et.partition_by, dates)
    found.repaired = True

