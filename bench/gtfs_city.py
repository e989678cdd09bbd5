"""A seeded, city-scale GTFS feed for benchmarks and pipeline tests.

Stops sit on a street grid (350 m blocks) around a city centre (Daegu, 35.8714 N 128.6014 E).
Each route is a walk across the grid towards the far side of the city (so routes cross and
share segments near the centre), served in both directions with shapes that follow the
streets. Service runs 05:00 to 25:30 (trips after midnight belong to the previous service
day, so times pass 24:00:00), with peak, day, evening and night headways, on three calendars
(weekdays, Saturdays, Sundays) plus holiday exceptions in calendar_dates.txt. Headways are
scaled so that stop_times.txt has at least the requested number of rows.

    .venv/bin/python bench/gtfs_city.py bench-out/gtfs-city --stop-times 3000000
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["CENTRE", "generate_feed"]

CENTRE = (128.6014, 35.8714)  # lon, lat
BLOCK_M = 350.0
SERVICES = {"WK": (1, 1, 1, 1, 1, 0, 0), "SA": (0, 0, 0, 0, 0, 1, 0), "SU": (0, 0, 0, 0, 0, 0, 1)}
SERVICE_FACTOR = {"WK": 1.0, "SA": 1.5, "SU": 2.0}  # headway multiplier per calendar
# (from second of the service day, headway in minutes before scaling)
HEADWAYS = ((5 * 3600, 20.0), (7 * 3600, 8.0), (9 * 3600, 12.0), (17 * 3600, 8.0),
            (19 * 3600, 15.0), (22 * 3600, 30.0))
SERVICE_END = 25 * 3600 + 30 * 60
HOLIDAYS = ("20260101", "20260216", "20260301", "20260505", "20260606", "20260815",
            "20261003", "20261009", "20261225")


@dataclass
class _Pattern:
    """One route direction: its stops (grid node numbers) and running times."""

    route: int
    direction: int
    nodes: np.ndarray
    arrive: np.ndarray  # arrival second at each stop after the trip's start
    depart: np.ndarray  # departure second at each stop after the trip's start
    factor: float  # this route's headway multiplier


def _walk(rng: np.random.Generator, size: int, length: int) -> np.ndarray:
    """A self-avoiding walk over the grid from one side towards the other."""
    side = int(rng.integers(4))
    edge = int(rng.integers(size // 6, size - size // 6))
    x, y = [(0, edge), (size - 1, edge), (edge, 0), (edge, size - 1)][side]
    goal = [(1, 0), (-1, 0), (0, 1), (0, -1)][side]
    seen = {(x, y)}
    path = [(x, y)]
    moves = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    while len(path) < length:
        options, weights = [], []
        for dx, dy in moves:
            nx, ny = x + dx, y + dy
            if 0 <= nx < size and 0 <= ny < size and (nx, ny) not in seen:
                options.append((nx, ny))
                weights.append(6.0 if (dx, dy) == goal else (0.3 if (-dx, -dy) == goal else 1.5))
        if not options:
            break
        w = np.array(weights) / sum(weights)
        x, y = options[int(rng.choice(len(options), p=w))]
        seen.add((x, y))
        path.append((x, y))
    return np.array([px * size + py for px, py in path], dtype=np.int64)


def _patterns(rng: np.random.Generator, routes: int, size: int) -> list[_Pattern]:
    out = []
    for r in range(routes):
        nodes = _walk(rng, size, int(rng.integers(20, 46)))
        factor = float(rng.uniform(0.7, 1.6))
        for direction in (0, 1):
            seq = nodes if direction == 0 else nodes[::-1]
            run = rng.integers(55, 110, len(seq) - 1)  # seconds between stops
            dwell = np.r_[0, np.full(len(seq) - 2, 20), 0]  # none at either terminus
            arrive = np.concatenate([[0], np.cumsum(run + dwell[:-1])]).astype(np.int64)
            out.append(_Pattern(r, direction, seq, arrive, arrive + dwell, factor))
    return out


def _starts(p: _Pattern, service: str, scale: float, phase: float) -> np.ndarray:
    """Departure seconds of a pattern's trips on one calendar."""
    times, t = [], 5 * 3600 + phase
    while t < SERVICE_END:
        times.append(t)
        minutes = next(h for start, h in reversed(HEADWAYS) if t >= start)
        t += minutes * 60 * p.factor * SERVICE_FACTOR[service] * scale
    return np.round(np.array(times)).astype(np.int64)


def _total(patterns: list[_Pattern], scale: float, phases: np.ndarray) -> int:
    return sum(len(_starts(p, s, scale, phases[i])) * len(p.nodes)
               for i, p in enumerate(patterns) for s in SERVICES)


def _clock(seconds: np.ndarray) -> pa.Array:
    """HH:MM:SS text (hours may pass 24) for an array of seconds."""
    s = pa.array(seconds)
    parts = [pc.divide(s, 3600), pc.divide(pc.remainder(s, 3600), 60), pc.remainder(s, 60)]
    text = [pc.utf8_lpad(pc.cast(x, pa.string()), 2, "0") for x in parts]
    return pc.binary_join_element_wise(*text, ":")


def _write(folder: Path, name: str, table: pa.Table) -> None:
    pacsv.write_csv(table, folder / name, pacsv.WriteOptions(quoting_style="needed"))


def generate_feed(folder: Path, stop_times: int = 3_000_000, seed: int = 42) -> Path:
    """Write a GTFS feed with at least ``stop_times`` stop times into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    routes = max(2, round(math.sqrt(stop_times) / 12))
    size = max(12, math.ceil(math.sqrt(routes * 16)))
    patterns = _patterns(rng, routes, size)
    phases = rng.uniform(0, 600, len(patterns))
    scale = 1.0
    for _ in range(6):
        scale *= _total(patterns, scale, phases) / stop_times
    while _total(patterns, scale, phases) < stop_times:
        scale *= 0.99
    lon, lat = _grid(size, rng)
    _static_files(folder, routes, size, lon, lat)
    _shapes(folder, patterns, lon, lat)
    _trips_and_times(folder, patterns, scale, phases)
    return folder


def _grid(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """lon, lat of every grid node (node = x * size + y), with a little jitter."""
    x, y = np.divmod(np.arange(size * size), size)
    dlat = BLOCK_M / 111_320.0
    dlon = dlat / math.cos(math.radians(CENTRE[1]))
    jitter = rng.normal(0, 0.08, (2, size * size))
    lon = CENTRE[0] + (x - size / 2 + jitter[0]) * dlon
    lat = CENTRE[1] + (y - size / 2 + jitter[1]) * dlat
    return np.round(lon, 6), np.round(lat, 6)


def _static_files(folder: Path, routes: int, size: int, lon: np.ndarray, lat: np.ndarray) -> None:
    _write(folder, "agency.txt", pa.table({
        "agency_id": ["DTC"], "agency_name": ["Daegu Transit Corporation (synthetic)"],
        "agency_url": ["https://example.org/transit"], "agency_timezone": ["Asia/Seoul"],
        "agency_lang": ["ko"]}))
    n = size * size
    hub = n // 2 + size // 2  # the three stops at the centre are platforms of one station
    parent = ["CENTRAL" if abs(i - hub) <= 1 else "" for i in range(n)] + [""]
    _write(folder, "stops.txt", pa.table({  # an empty location_type means a stop
        "stop_id": [f"S{i:05d}" for i in range(n)] + ["CENTRAL"],
        "stop_code": [str(10000 + i) for i in range(n)] + [""],
        "stop_name": [f"Street {i // size} / Avenue {i % size}" for i in range(n)]
        + ["Central Station"],
        "stop_lat": np.append(lat, lat[hub]), "stop_lon": np.append(lon, lon[hub]),
        "location_type": [""] * n + ["1"], "parent_station": parent}))
    _write(folder, "routes.txt", pa.table({
        "route_id": [f"R{r:03d}" for r in range(routes)], "agency_id": ["DTC"] * routes,
        "route_short_name": [str(100 + r) for r in range(routes)],
        "route_long_name": [f"Line {100 + r}" for r in range(routes)],
        "route_type": ["3"] * routes, "route_color": ["0055AA"] * routes}))
    _write(folder, "calendar.txt", pa.table({
        "service_id": list(SERVICES),
        **{day: [str(SERVICES[s][k]) for s in SERVICES] for k, day in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))},
        "start_date": ["20260101"] * 3, "end_date": ["20261231"] * 3}))
    _write(folder, "calendar_dates.txt", pa.table({
        "service_id": ["WK", "SU"] * len(HOLIDAYS),
        "date": [d for d in HOLIDAYS for _ in range(2)],
        "exception_type": ["2", "1"] * len(HOLIDAYS)}))


def _shapes(folder: Path, patterns: list[_Pattern], lon: np.ndarray, lat: np.ndarray) -> None:
    """One shape per pattern: its stops with two points between each pair."""
    ids, seq, xs, ys = [], [], [], []
    for p in patterns:
        a, b = p.nodes[:-1], p.nodes[1:]
        t = np.array([0.0, 1 / 3, 2 / 3])
        px = (lon[a][:, None] + (lon[b] - lon[a])[:, None] * t).ravel()
        py = (lat[a][:, None] + (lat[b] - lat[a])[:, None] * t).ravel()
        px, py = np.append(px, lon[p.nodes[-1]]), np.append(py, lat[p.nodes[-1]])
        ids.append(np.full(len(px), f"SH{p.route:03d}_{p.direction}"))
        seq.append(np.arange(1, len(px) + 1))
        xs.append(np.round(px, 6))
        ys.append(np.round(py, 6))
    _write(folder, "shapes.txt", pa.table({
        "shape_id": np.concatenate(ids), "shape_pt_lat": np.concatenate(ys),
        "shape_pt_lon": np.concatenate(xs), "shape_pt_sequence": np.concatenate(seq)}))


def _trips_and_times(folder: Path, patterns: list[_Pattern], scale: float,
                     phases: np.ndarray) -> None:
    trip_rows: dict[str, list[str]] = {k: [] for k in (
        "route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "shape_id")}
    chunks = []
    for i, p in enumerate(patterns):
        for service in SERVICES:
            starts = _starts(p, service, scale, phases[i])
            names = [f"R{p.route:03d}-{p.direction}-{service}-{k:04d}" for k in range(len(starts))]
            trip_rows["route_id"] += [f"R{p.route:03d}"] * len(starts)
            trip_rows["service_id"] += [service] * len(starts)
            trip_rows["trip_id"] += names
            trip_rows["trip_headsign"] += [f"to Avenue {p.nodes[-1]}"] * len(starts)
            trip_rows["direction_id"] += [str(p.direction)] * len(starts)
            trip_rows["shape_id"] += [f"SH{p.route:03d}_{p.direction}"] * len(starts)
            k = len(p.nodes)
            chunks.append({"trip": np.repeat(np.array(names), k),
                           "arrive": (starts[:, None] + p.arrive[None, :]).ravel(),
                           "depart": (starts[:, None] + p.depart[None, :]).ravel(),
                           "stop": np.tile(p.nodes, len(starts)),
                           "seq": np.tile(np.arange(1, k + 1), len(starts))})
    _write(folder, "trips.txt", pa.table(trip_rows))
    trip = np.concatenate([c["trip"] for c in chunks])
    stop = np.concatenate([c["stop"] for c in chunks])
    stop_ids = pc.binary_join_element_wise("S", pc.utf8_lpad(
        pc.cast(pa.array(stop), pa.string()), 5, "0"), "")
    table = pa.table({
        "trip_id": pa.array(trip), "arrival_time": _clock(np.concatenate(
            [c["arrive"] for c in chunks])),
        "departure_time": _clock(np.concatenate([c["depart"] for c in chunks])),
        "stop_id": stop_ids, "stop_sequence": pa.array(np.concatenate(
            [c["seq"] for c in chunks]))})
    pacsv.write_csv(table, folder / "stop_times.txt", pacsv.WriteOptions(quoting_style="none"))


def main() -> None:
    """Write a feed from the command line."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--stop-times", type=int, default=3_000_000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    out = generate_feed(args.folder, args.stop_times, args.seed)
    print(out)


if __name__ == "__main__":
    main()
