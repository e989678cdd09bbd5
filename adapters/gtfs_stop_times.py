"""stop_times.txt, block by block, vectorised: millions of rows without a Python loop per row.

References are resolved with ``index_in`` against the accepted trips and stops, times are
parsed from the Arrow string buffers with numpy, entity ids are built by joining the
pre-encoded trip part with the stop sequence, and a repeated (trip_id, stop_sequence) is found
with numpy over 64-bit keys, across blocks too.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.adapterkit import Problems, extra_json, local_ids, missing, type_error, urns
from hubctl.adapters.gtfs_parse import (
    clock_text,
    parse_clock,
    parse_float,
    parse_int,
    text,
    trimmed,
)
from hubctl.adapters.gtfs_tables import KNOWN_COLUMNS, Converted, Feed
from hubctl.rejects import Reason, reason

__all__ = ["StopTimes"]


class StopTimes:
    """Converts blocks of stop_times.txt against the feed's accepted trips and stops."""

    def __init__(self, feed: Feed, trips: pa.Array, rejected_trips: pa.Array,
                 stops: pa.Array, rejected_stops: pa.Array) -> None:
        self.feed = feed
        self.trips = trips
        self.id_stems = pc.binary_join_element_wise(  # "urn:ngsi-ld:GtfsStopTime:<feed>:<trip>:"
            "urn:ngsi-ld:GtfsStopTime:", local_ids(feed.feed_id, trips), ":", "")
        self.trip_urns = urns("GtfsTrip", trips, feed.feed_id)
        self.stops = stops
        self.stop_urns = urns("GtfsStop", stops, feed.feed_id)
        self.rejected = {"trip_id": rejected_trips, "stop_id": rejected_stops}
        self.blocks: list[np.ndarray] = []  # sorted (trip, stop_sequence) keys of each block
        self.trip_seen = np.zeros(len(trips), bool)  # trips that earlier blocks held
        # each trip's first and last stop_sequence so far and whether they have both times
        big = np.iinfo(np.int64).max
        self.first_seq = np.full(len(trips), big, np.int64)
        self.last_seq = np.full(len(trips), -big, np.int64)
        self.first_timed = np.zeros(len(trips), bool)
        self.last_timed = np.zeros(len(trips), bool)
        self.half_timed = 0  # stop times with an arrival but no departure, or the reverse
        self.half_example: str | None = None

    def convert(self, table: pa.Table, where: str) -> Converted:
        """Good GtfsStopTime rows and rejects of one block."""
        p = Problems(table, "GtfsStopTime", where)
        p.flag_nul()
        trip_id, stop_id = trimmed(table, "trip_id"), trimmed(table, "stop_id")
        tidx = self._resolve(p, trip_id, self.trips, "trip_id", "GtfsTrip", "trips.txt")
        sidx = self._resolve(p, stop_id, self.stops, "stop_id", "GtfsStop", "stops.txt")
        values = _values(p, table)
        seq = values["stopSequence"]
        self._repeats(p, tidx, seq, trip_id)
        extras = [c for c in table.column_names if c not in KNOWN_COLUMNS["stop_times.txt"]]
        n = table.num_rows
        out = pa.table({
            "id": pc.binary_join_element_wise(pc.take(self.id_stems, tidx),
                                              pc.cast(seq, pa.string()), ""),
            "observed_at": pa.repeat(pa.scalar(self.feed.arrival), n),
            "feedId": pa.repeat(pa.scalar(self.feed.feed_id), n),
            "hasTrip": pc.take(self.trip_urns, tidx), "hasStop": pc.take(self.stop_urns, sidx),
            "stopSequence": seq, "arrivalTime": clock_text(values["arrivalSeconds"]),
            "departureTime": clock_text(values["departureSeconds"]), **values,
            "stopHeadsign": text(table, "stop_headsign"),
            "_extra": extra_json([(c, text(table, c)) for c in extras], n),
            "_time_index": pa.repeat(pa.scalar("arrival"), n),
        })
        bad = p.bad()
        self._ends(tidx, values, bad, trip_id)
        rows = out.filter(pa.array(~bad)) if bad.any() else out
        rejects = p.rejects(["trip_id", "stop_sequence"])
        return Converted("GtfsStopTime", rows, rejects, trip_id)

    def _ends(self, tidx: pa.Array, values: dict[str, pa.Array], bad: np.ndarray,
              trip_id: pa.Array) -> None:
        """Follow each trip's first and last stop (GTFS requires arrival and departure times
        there) and count stop times with one of the two times only."""
        arrive = np.asarray(pc.is_valid(values["arrivalSeconds"]).to_numpy(
            zero_copy_only=False), bool)
        depart = np.asarray(pc.is_valid(values["departureSeconds"]).to_numpy(
            zero_copy_only=False), bool)
        ok = ~bad & np.asarray(pc.and_(pc.is_valid(tidx), pc.is_valid(
            values["stopSequence"])).to_numpy(zero_copy_only=False), bool)
        half = np.flatnonzero(ok & (arrive != depart))
        if len(half):
            self.half_timed += len(half)
            if self.half_example is None:
                i = int(half[0])
                self.half_example = (f"trip {trip_id[i].as_py()!r} stop_sequence "
                                     f"{values['stopSequence'][i].as_py()}")
        rows = np.flatnonzero(ok)
        if not len(rows):
            return
        t = np.asarray(pc.take(tidx, pa.array(rows)).to_numpy(zero_copy_only=False), np.int64)
        s = np.asarray(pc.take(values["stopSequence"], pa.array(rows)).to_numpy(
            zero_copy_only=False), np.int64)
        timed = (arrive & depart)[rows]
        order = np.lexsort((s, t))
        t, s, timed = t[order], s[order], timed[order]
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
        ends = np.r_[starts[1:] - 1, len(t) - 1]
        trips = t[starts]
        earlier = s[starts] < self.first_seq[trips]
        self.first_seq[trips[earlier]] = s[starts][earlier]
        self.first_timed[trips[earlier]] = timed[starts][earlier]
        trips = t[ends]
        later = s[ends] > self.last_seq[trips]
        self.last_seq[trips[later]] = s[ends][later]
        self.last_timed[trips[later]] = timed[ends][later]

    def end_warnings(self) -> list[str]:
        """What the stop times lacked that GTFS asks for, once the file is read."""
        out: list[str] = []
        seen = self.last_seq >= self.first_seq
        untimed = np.flatnonzero(seen & ~(self.first_timed & self.last_timed))
        if len(untimed):
            i = int(untimed[0])
            which = "first" if not self.first_timed[i] else "last"
            seq = self.first_seq[i] if which == "first" else self.last_seq[i]
            out.append(f"{len(untimed):,} trips lack an arrival or departure time at their "
                       f"first or last stop, which GTFS requires (e.g. trip "
                       f"{self.trips[i].as_py()!r}, {which} stop, stop_sequence {seq}): when "
                       "they start or end is unknown")
        if self.half_timed:
            out.append(f"{self.half_timed:,} stop times give an arrival_time without a "
                       f"departure_time or the reverse (e.g. {self.half_example}); GTFS asks "
                       "for both, equal when the vehicle does not wait")
        return out

    def _resolve(self, p: Problems, ids: pa.Array, known: pa.Array, field: str, type_name: str,
                 file: str) -> pa.Array:
        """Index of each id among the accepted ones; rows pointing nowhere are rejected."""
        idx = pc.index_in(ids, value_set=known)
        p.flag(pc.is_null(ids), missing(field))
        lost = pc.and_(pc.is_valid(ids), pc.is_null(idx))
        if pc.any(lost).as_py():
            was_rejected = pc.is_in(ids, value_set=self.rejected[field])

            def why(i: int) -> Reason:
                where = f"{file} (rejected there)" if was_rejected[i].as_py() else file
                return reason("unknown-reference", field, value=ids[i].as_py(),
                              type=type_name, where=where)

            p.flag(lost, why)
        return idx

    def _repeats(self, p: Problems, tidx: pa.Array, seq: pa.Array, trip_id: pa.Array) -> None:
        """Reject a (trip_id, stop_sequence) seen before, in this block or an earlier one.

        Keys are 64-bit (trip index, sequence). Within the block a stable sort finds the
        repeats; earlier blocks are searched only for the trips they held (in a feed sorted by
        trip, just the trip cut by the block boundary).
        """
        valid = np.asarray(pc.and_(pc.is_valid(tidx), pc.is_valid(seq)).to_numpy(
            zero_copy_only=False), bool)
        t = np.asarray(pc.fill_null(tidx, 0).to_numpy(zero_copy_only=False), np.int64)
        s = np.asarray(pc.fill_null(seq, 0).to_numpy(zero_copy_only=False), np.int64)
        rows = np.flatnonzero(valid)
        k = (t[rows] << 32) | (s[rows] & 0xFFFFFFFF)
        order = np.argsort(k, kind="stable")
        ks = k[order]
        again = np.zeros(len(k), bool)
        again[order[1:][ks[1:] == ks[:-1]]] = True
        earlier = np.flatnonzero(self.trip_seen[t[rows]])
        for block in self.blocks if len(earlier) else []:
            pos = np.clip(np.searchsorted(block, k[earlier]), 0, max(len(block) - 1, 0))
            again[earlier[block[pos] == k[earlier]]] = True
        self.trip_seen[t[rows]] = True
        self.blocks.append(ks)
        mask = np.zeros(len(t), bool)
        mask[rows[again]] = True
        p.flag(mask, lambda i: reason(
            "duplicate-key", "stop_sequence", value=int(s[i]),
            detail=f"trip {trip_id[i].as_py()!r} has this stop_sequence in an earlier row; "
                   "the first one is kept"))


def _values(p: Problems, table: pa.Table) -> dict[str, pa.Array]:
    """The typed columns of a block (sequence, seconds, pickup and drop-off, distance), with
    the problems of their text flagged."""
    col = {name: text(table, name) for name in table.column_names}
    blank = pa.nulls(table.num_rows, pa.string())
    seq, bad_seq = parse_int(col["stop_sequence"])
    p.flag(bad_seq, type_error("stop_sequence", col["stop_sequence"], "integer"))
    p.flag(pc.and_(pc.is_null(seq), pa.array(~bad_seq)), missing("stop_sequence"))
    out = {"stopSequence": seq}
    for name, attr in (("arrival_time", "arrivalSeconds"), ("departure_time", "departureSeconds")):
        out[attr], bad = parse_clock(col.get(name, blank))
        p.flag(bad, type_error(name, col.get(name, blank), "time H:MM:SS"))
    arrive, depart = col.get("arrival_time", blank), col.get("departure_time", blank)
    p.flag(pc.less(out["departureSeconds"], out["arrivalSeconds"]), lambda i: reason(
        "end-before-start", "departure_time", value=depart[i].as_py(), start=arrive[i].as_py()))
    for name, attr in (("pickup_type", "pickupType"), ("drop_off_type", "dropOffType")):
        code, bad = parse_int(col.get(name, blank))
        p.flag(bad, type_error(name, col.get(name, blank), "integer"))
        out[attr] = pc.cast(code, pa.string())  # SDM's text enum: "0" .. "3"
    out["distanceTravelled"], bad = parse_float(col.get("shape_dist_traveled", blank))
    p.flag(bad, type_error("shape_dist_traveled", col.get("shape_dist_traveled", blank),
                           "number"))
    return out
