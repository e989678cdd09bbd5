"""Review of the ingest speed-ups of issue 13 §4 (read-ahead and parsing threads, the hash
beside the read, the running row after the first batch, one-commit table creation): the
seams a user can hit, with the real engine and lake. A test marked ``xfail(strict=True)``
pins a problem handed to its owner (see /work/notes/TEAM.md): it fails loudly once fixed, so
that the marker goes with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubctl.adapters import get_adapter
from hubctl.ingest import ingest
from hubctl.lake import Lake
from hubctl.orchestrate import ingest_request


def _calls(rows: int) -> bytes:
    """A korea-112 calls CSV of ``rows`` calls, one a second from 2023-03-01."""
    lines = ["접수번호,접수일시,사건종별,위도,경도"] + [
        f"{i},2023-03-{1 + i // 86400:02d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
        f"{i % 60:02d},폭력,37.5,127.0" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.xfail(strict=True, reason="boot: an input that changes while it is read is "
                                       "marked as ingested under the hash taken before")
def test_an_input_cut_short_while_it_is_read_is_not_marked_as_ingested(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file truncated while a run reads it (an export rewritten, a copy restarted): the run
    reads a third of it and must not record the fingerprint of the whole file as ingested.
    Else the complete file, given again, is 'unchanged' and two thirds of its records are
    never written, with a ledger that says everything was."""
    monkeypatch.setattr(type(get_adapter("calls")), "batch_rows", 1000)  # 64 KiB blocks
    data = _calls(30_000)
    path = tmp_path / "112.csv"
    path.write_bytes(data)
    lake = Lake(tmp_path / "lake")

    def cut_short(_done: int) -> None:  # after the first commit, blocks still to read
        if path.stat().st_size == len(data):
            with open(path, "r+b") as f:
                f.truncate(len(data) // 3)

    first = ingest(lake, ingest_request("calls", [str(path)], {}), progress=cut_short)
    assert first.read < 30_000  # the run did read the file cut short
    path.write_bytes(data)  # the complete file again
    again = ingest(lake, ingest_request("calls", [str(path)], {}))
    assert again.status == "ok"
    assert lake.open("Alert").to_pyarrow_table().num_rows == 30_000
