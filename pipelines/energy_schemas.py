"""Column schemas of the ``energy`` pipeline's derived tables (one schema whether or not the
input was present, so ``derived.energy_<table>`` keeps its shape from run to run)."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["KPI_SCHEMA", "SCHEMAS", "empty"]

F, N, S, D = pa.float64(), pa.int64(), pa.string(), pa.date32()
_EV = [("sessions", N), ("open_sessions", N), ("energy_kwh", F), ("occupied_hours", F),
       ("mean_session_hours", F), ("sessions_with_charging_end", N), ("idle_hours", F),
       ("idle_share", F), ("connectors", N), ("available_hours", F), ("utilisation", F)]

KPI_SCHEMA = pa.schema([("kpi", S), ("value", F), ("unit", S), ("definition", S)])

SCHEMAS: dict[str, pa.Schema] = {
    "meter_daily": pa.schema([("meter", S), ("site", S), ("day", D), ("kwh", F),
                              ("peak_kwh", F), ("offpeak_kwh", F), ("readings", N),
                              ("hours", F), ("peak_kw", F)]),
    "meter_monthly": pa.schema([("meter", S), ("site", S), ("month", D), ("kwh", F),
                                ("peak_kwh", F), ("offpeak_kwh", F), ("peak_share", F),
                                ("days", N), ("readings", N), ("hours", F), ("peak_kw", F),
                                ("mean_kw", F), ("load_factor", F), ("base_load_kw", F)]),
    "meters": pa.schema([("meter", S), ("site", S), ("first_month", D), ("last_month", D),
                         ("days", N), ("kwh", F), ("kwh_per_day", F), ("peak_share", F),
                         ("peak_kw", F), ("mean_kw", F), ("load_factor", F),
                         ("base_load_kw", F)]),
    "site_daily": pa.schema([("site", S), ("day", D), ("meters", N), ("kwh", F),
                             ("peak_kwh", F), ("offpeak_kwh", F)]),
    "site_monthly": pa.schema([("site", S), ("month", D), ("kwh", F), ("peak_share", F),
                               ("peak_kw", F), ("mean_kw", F), ("load_factor", F),
                               ("base_load_kw", F)]),
    "anomalies": pa.schema([("meter", S), ("site", S), ("day", D), ("day_kind", S),
                            ("kwh", F), ("typical_kwh", F), ("mad_kwh", F), ("robust_z", F),
                            ("excess_kwh", F), ("ratio", F), ("direction", S)]),
    "ev_hourly": pa.schema([("level", S), ("key", S), ("weekday", N), ("hour", N),
                            ("sessions", N), ("energy_kwh", F), ("occupied_hours", F),
                            ("available_hours", F), ("occupancy", F)]),
    "ev_charge_points": pa.schema([("charge_point", S), ("site", S), *_EV]),
    "ev_sites": pa.schema([("site", S), ("charge_points", N), *_EV]),
    "kpis": KPI_SCHEMA,
}


def empty(name: str) -> pa.Table:
    """An empty table with the schema of derived table ``name``."""
    return SCHEMAS[name].empty_table()
