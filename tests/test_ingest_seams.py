"""Review of the ingest speed-ups of issue 13 §4 (read-ahead and parsing threads, the hash
beside the read, the running row after the first batch, one-commit table creation): the
seams a user can hit, with the real engine and lake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hubctl.adapters import get_adapter
from hubctl.errors import InputError
from hubctl.ingest import ingest
from hubctl.lake import Lake
from hubctl.ledger import source_runs
from hubctl.orchestrate import ingest_request


def _calls(rows: int) -> bytes:
    """A korea-112 calls CSV of ``rows`` calls, one a second from 2023-03-01."""
    lines = ["접수번호,접수일시,사건종별,위도,경도"] + [
        f"{i},2023-03-{1 + i // 86400:02d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
        f"{i % 60:02d},폭력,37.5,127.0" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_an_input_cut_short_while_it_is_read_is_not_marked_as_ingested(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file truncated while a run reads it (an export rewritten, a copy restarted): the run
    reads a third of it and must not record the fingerprint of the whole file as ingested.
    Else the complete file, given again, is 'unchanged' and two thirds of its records are
    never written, with a ledger that says everything was. The run fails, naming the file,
    with what it read committed; the complete file given again is read whole."""
    monkeypatch.setattr(type(get_adapter("calls")), "batch_rows", 1000)  # 64 KiB blocks
    data = _calls(30_000)
    path = tmp_path / "112.csv"
    path.write_bytes(data)
    lake = Lake(tmp_path / "lake")

    def cut_short(_done: int) -> None:  # after the first commit, blocks still to read
        if path.stat().st_size == len(data):
            with open(path, "r+b") as f:
                f.truncate(len(data) // 3)

    with pytest.raises(InputError, match="changed while it was read") as error:
        ingest(lake, ingest_request("calls", [str(path)], {}), progress=cut_short)
    assert error.value.hint and "run the same command again" in error.value.hint
    (first,) = source_runs(lake, None)
    assert first["status"] == "failed" and 0 < first["read"] < 30_000  # read cut short
    assert first["read"] == first["written"] + first["rejected"] + first["unreached"]
    path.write_bytes(data)  # the complete file again
    again = ingest(lake, ingest_request("calls", [str(path)], {}))
    assert again.status == "ok"
    assert lake.open("Alert").to_pyarrow_table().num_rows == 30_000


@pytest.mark.subprocess
def test_a_line_with_a_bad_byte_and_a_field_too_many_prints_no_traceback(
        tmp_path: Path) -> None:
    """A record with a byte that is not UTF-8 and one field too many, in a block the fast
    path tries whole: Arrow's handler of bad rows cannot decode its text, and Python printed
    "Exception ignored in ... Traceback ... UnicodeDecodeError" on stderr (twice), above a
    run that is right (the line rejected as bad-encoding, every other written)."""
    lines = [b"X,XX,2024-05-01 %02d:00:00+00:00,S%d,no2,%d,ppb" % (h, s, h + s)
             for h in range(24) for s in range(3)]
    lines[40] = lines[40].replace(b",S", b",S\xe9") + b",extra"
    data = tmp_path / "long.csv"
    data.write_bytes(b"city,country,date.utc,location,parameter,value,unit\n"
                     + b"\n".join(lines) + b"\n")
    stations = tmp_path / "stations.csv"
    stations.write_text("location,coordinates.latitude,coordinates.longitude\n"
                        "S0,1,1\nS1,2,2\nS2,3,3\n", encoding="utf-8")
    hubctl = str(Path(sys.executable).parent / "hubctl")
    out = subprocess.run([hubctl, "--lake", str(tmp_path / "lake"), "ingest", "openaq",
                          str(data), "--stations", str(stations), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert (run["read"], run["written"], run["rejected"]) == (72 + 3, 71 + 3, 1)
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


def test_a_bad_byte_in_a_later_block_is_described_as_bytes(tmp_path: Path) -> None:
    """The reason of a bad-encoding line names its byte as ``b'\\xe9'``, in the first block
    and in the later ones, which are read into a reused buffer (a bytearray): not
    ``bytearray(b'\\xe9')``."""
    from hubctl.csvread import open_csv

    good = [b"X,XX,2024-05-01 00:00:00+00:00,S%d,no2,%d,ppb\n" % (i % 7, i) for i in range(6000)]
    for at in (3, 5000):  # the first block, a later one (blocks of 64 KiB)
        good[at] = b"X,XX,2024-05-01 00:00:00+00:00,caf\xe9,no2,1,ppb\n"
    path = tmp_path / "m.csv"
    path.write_bytes(b"city,country,date.utc,location,parameter,value,unit\n" + b"".join(good))
    stream = open_csv(path, block_size=1 << 16)
    bad = []
    for _batch in stream:
        bad += stream.take_invalid()
    assert [(b.line, b.code) for b in bad] == [(5, "bad-encoding"), (5002, "bad-encoding")]
    assert all(b.detail.startswith("byte b'\\xe9' at column 35 ") for b in bad), bad
