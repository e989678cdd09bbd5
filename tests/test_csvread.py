"""The shared CSV reader: one bad line costs one line, with its real line number."""

from __future__ import annotations

import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hubctl.csvread import (
    DEFAULT_LIMITS,
    READ_AHEAD_ENV,
    READ_AHEAD_THREAD,
    CsvLimits,
    open_csv,
    split_csv,
)
from hubctl.errors import InputError
from tests.helpers import hub, hub_json

HEADER = b"city,country,date.utc,location,parameter,value,unit\n"
LATIN1 = "X,XX,2024-05-01 00:00:00+00:00,S1,no2,5,µg/m³\n".encode("latin-1")
BIG = b"X,XX,2024-05-01 00:00:00+00:00,S1,no2,5," + b"u" * (3 << 20) + b"\n"


def _line(station: str, hour: int, value: float) -> bytes:
    at = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(hours=hour)
    return f"X,XX,{at.isoformat(sep=' ')},{station},no2,{value},µg/m³\n".encode()


def _read(path: Path, **kw: object) -> tuple[list[dict], list[int], list]:
    stream = open_csv(path, **kw)  # type: ignore[arg-type]
    rows, lines, bad = [], [], []
    for batch in stream:
        rows += batch.to_pylist()
        lines += stream.lines.tolist()
        bad += stream.take_invalid()
    return rows, lines, bad


Read = tuple[list[dict], list[int], list, list[int]]  # rows, lines, bad lines, batch sizes


def _blocks(path: Path, **kw: object) -> Read:
    """What a stream reads: rows, their lines, bad lines (sorted: a block's come by reason)
    and the rows of each batch."""
    stream = open_csv(path, **kw)  # type: ignore[arg-type]
    rows, lines, bad, sizes = [], [], [], []
    for batch in stream:
        rows += batch.to_pylist()
        lines += stream.lines.tolist()
        bad += stream.take_invalid()
        sizes.append(batch.num_rows)
    return rows, lines, sorted(bad), sizes


def _read_ranges(path: Path, size: int, limits: CsvLimits = DEFAULT_LIMITS,
                 batch_rows: int = 100) -> tuple[int, Read]:
    """The file read range by range (:func:`split_csv` of ``size``), one stream per range,
    after checking that the ranges cover it and start on the lines they say: (how many
    ranges, what the ranges read together). ``batch_rows`` 100: blocks of 64 KiB."""
    spans = split_csv(path, size, limits=limits, batch_rows=batch_rows)
    data = path.read_bytes()
    assert spans[0].start == 0 and spans[-1].end == len(data)
    assert [s.end for s in spans[:-1]] == [s.start for s in spans[1:]]
    assert [s.first_line for s in spans] == [data.count(b"\n", 0, s.start) + 1 for s in spans]
    assert [(s.index, s.count) for s in spans] == [(i, len(spans)) for i in range(len(spans))]
    out: Read = ([], [], [], [])
    for span in spans:
        more = _blocks(path, limits=limits, batch_rows=batch_rows, span=span)
        out = (out[0] + more[0], out[1] + more[1], out[2] + more[2], out[3] + more[3])
    return len(spans), (out[0], out[1], sorted(out[2]), out[3])


def _messy(records: int, long_at: int | None = None) -> bytes:
    """A CRLF file of three columns: records on two or four lines (quoted line breaks), stray
    quotes, empty lines, malformed records, bad bytes, a quoted record of 5,000 bytes at
    ``long_at``, and a quote that never closes near the end."""
    out = [b"\xef\xbb\xbfid,text,n\r\n"]
    for i in range(records):
        k = i % 9
        if i == long_at:
            out.append(b'%d,"%s",%d\r\n' % (i, b"long\r\n" * 800, i))
        elif k == 0:
            out.append(b'%d,"two\r\nlines, ""quoted""",%d\r\n' % (i, i))
        elif k == 1:
            out.append(b'%d,12" pizza,%d\r\n' % (i, i))
        elif k == 2 and i % 5 == 0:
            out.append(b"%d,too,many,%d\r\n" % (i, i))
        elif k == 3 and i % 7 == 0:
            out.append(b"%d,caf\xe9,%d\r\n" % (i, i))
        elif k == 4:
            out.append(b"\r\n")
        elif k == 5:
            out.append(b'%d,"a\nb\nc\n",%d\n' % (i, i))
        else:
            out.append(b"%d,plain %d,%d\r\n" % (i, i, i))
    return b"".join(out) + b'"never closed,1\r\nlast,1,2\r\nend,3'


@pytest.mark.parametrize("data,limits", [
    (_messy(20_000), DEFAULT_LIMITS),
    (_messy(20_000, long_at=15_000), CsvLimits(max_line_bytes=2000)),
])
def test_byte_ranges_read_the_whole_files_blocks(tmp_path: Path, data: bytes,
                                                  limits: CsvLimits) -> None:
    """The ranges cut only where reading the whole file cuts a block, never in a quoted line
    break (three lines in four of the file are in one), and together read the same blocks:
    the rows, line numbers and bad lines (text, reason) of the whole file; nothing is cut
    past a quoted record longer than the limit."""
    path = tmp_path / "m.csv"
    path.write_bytes(data)
    whole = _blocks(path, limits=limits, batch_rows=100)
    assert len(whole[2]) > 700 and len(whole[3]) > 4  # bad lines; blocks
    n, ranges = _read_ranges(path, 1, limits)  # a cut at every block's end
    assert n > 4 and ranges == whole
    if limits.max_line_bytes == 2000:  # rejected, then nothing cut after it
        assert any(b.code == "malformed-record" and b.text == "15000,\"long" for b in whole[2])
        last = split_csv(path, 1, limits=limits, batch_rows=100)[-1]
        assert last.start <= data.index(b'15000,"long')


def test_byte_ranges_of_many_quoted_multi_line_records(tmp_path: Path) -> None:
    """Quoted records that span lines, with a malformed line in a later range: the same
    records, line numbers and bad lines as one read."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(["id", "text"])
    for i in range(30_000):
        w.writerow([str(i), f"line {i}\nstill {i}, \"quoted\"" if i % 7 == 0 else f"t{i}"])
    out.write("5999,too,many\n6000,last\n")
    path = tmp_path / "q.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    whole = _blocks(path, batch_rows=100)
    assert [b.line for b in whole[2]] == [out.getvalue().count("\n") - 1]
    n, ranges = _read_ranges(path, 100_000)
    assert n > 2 and ranges == whole


def test_a_compressed_or_small_file_is_one_range(tmp_path: Path) -> None:
    import gzip

    data = b"a,b\n" + b"1,2\n" * 100_000
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(data, mtime=0))
    (tmp_path / "a.csv").write_bytes(data)
    assert len(split_csv(tmp_path / "a.csv.gz", 10, batch_rows=100)) == 1
    assert len(split_csv(tmp_path / "a.csv", len(data), batch_rows=100)) == 1
    spans = split_csv(tmp_path / "a.csv", 100_000, batch_rows=100)
    # a cut at the end of the block after each target: the blocks end at whole numbers of
    # 64 KiB (batch_rows 100) after the 64 KiB read with the header
    assert [s.start for s in spans] == [0, 2 << 16, 4 << 16, 5 << 16]


def test_bad_byte_and_long_line_cost_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    body = [f"r{i},{i}\n".encode() for i in range(1, 2001)]
    body[499] = b"caf\xe9,500\n"  # line 501: Latin-1
    body[999] = b"x," + b"z" * (3 << 20) + b"\n"  # line 1001: 3 MB
    path.write_bytes(b"name,n\n" + b"".join(body))
    rows, lines, bad = _read(path, block_size=1 << 16)
    assert len(rows) == 1998
    assert {(b.line, b.code) for b in bad} == {(501, "bad-encoding"), (1001, "line-too-long")}
    assert [b.text for b in bad if b.code == "bad-encoding"] == ["caf\\xe9,500"]
    assert all(b.text.startswith("x,zzz") and "3,145,731 bytes" in b.text
               for b in bad if b.code == "line-too-long")
    # every other row keeps its real line number: r{i} sits on line i + 1
    assert all(line == int(r["name"][1:]) + 1 for r, line in zip(rows, lines, strict=True))


def test_quotes_empty_lines_and_malformed_rows_keep_real_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b'a,b\r\n1,2\r\n\r\n3,"x\r\ny"\r\n4,5,6\r\n7,12" pizza\r\n'
                     b'8,"say ""hi"", ok"\r\n9,\xff\r\n"open,2\r\n10,11\r\n12,13')
    rows, lines, bad = _read(path)
    assert [(r["a"], line) for r, line in zip(rows, lines, strict=True)] == [
        ("1", 2), ("3", 4), ("7", 7), ("8", 8), ("10", 11), ("12", 12)]
    assert rows[1]["b"] == "x\r\ny" and rows[2]["b"] == '12" pizza'
    assert rows[3]["b"] == 'say "hi", ok'
    assert sorted((b.line, b.code) for b in bad) == [
        (6, "malformed-record"), (9, "bad-encoding"), (10, "malformed-record")]


def test_a_header_wider_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n1\n", encoding="utf-8")
    with pytest.raises(InputError, match="100,000 columns, more than the limit of 2,000"):
        open_csv(path)
    assert len(open_csv(path, limits=CsvLimits(max_columns=100_000)).names) == 100_000


def test_a_compressed_file_is_named_as_such_with_how_to_decompress_it(tmp_path: Path) -> None:
    """A gzip / bzip2 / xz / zip file given as CSV: "is compressed (gzip)" and the command
    that decompresses it, not "is not UTF-8 text, convert it with iconv"; a CSV whose header
    starts with bzip2's three magic letters is still CSV."""
    import bz2
    import gzip
    import lzma

    text = b"location,value\nS1,1\n"
    files = {"gzip": ("a.csv.gz", gzip.compress(text), "gzip -dc a.csv.gz > a.csv"),
             "bzip2": ("b.csv.bz2", bz2.compress(text), "bzip2 -dc b.csv.bz2 > b.csv"),
             "xz": ("c.xz", lzma.compress(text), "xz -dc c.xz > c.csv")}
    for kind, (name, data, how) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=rf"is compressed \({kind}\), not CSV") as err:
            open_csv(tmp_path / name)
        assert how in (err.value.hint or "")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as z:
        z.writestr("d.csv", text)
    with pytest.raises(InputError, match=r"is compressed \(zip\)"):
        open_csv(tmp_path / "d.zip")
    (tmp_path / "bzh.csv").write_bytes(b"BZh1,value\nS1,1\n")
    assert open_csv(tmp_path / "bzh.csv").names == ["BZh1", "value"]


def test_openaq_rejects_the_latin1_and_the_3mb_line_and_writes_every_other(
        tmp_path: Path) -> None:
    lines = [_line(f"S{1 + i % 2}", i // 2, i) for i in range(4000)]
    lines[1500] = LATIN1  # file line 1502
    lines[3000] = BIG  # file line 3002
    data = tmp_path / "long.csv"
    data.write_bytes(HEADER + b"".join(lines))
    st = tmp_path / "st.csv"
    st.write_text("location,coordinates.latitude,coordinates.longitude\nS1,51,4\nS2,48,2\n",
                  encoding="utf-8")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "openaq", str(data), "--stations", str(st))
    assert run["reconciles"] and run["rejected"] == 2
    assert run["read"] == 4000 + 2  # the records of the file and the two stations
    n = hub_json(lake, "sql", "SELECT count(*) AS n FROM AirQualityObserved")[0]["n"]
    assert n == 4000 - 2
    rejects = {r["record"]: r["codes"] for r in hub_json(lake, "rejects")}
    assert rejects == {"line 1502": "bad-encoding", "line 3002": "line-too-long"}


def test_a_raised_line_limit_lets_the_long_line_through(tmp_path: Path) -> None:
    data = tmp_path / "long.csv"
    data.write_bytes(HEADER + _line("S1", 0, 1) + BIG.replace(b"S1,no2,5,", b"S1,no2,5,")
                     + _line("S1", 2, 3))
    st = tmp_path / "st.csv"
    st.write_text("location,coordinates.latitude,coordinates.longitude\nS1,51,4\n",
                  encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "openaq", str(data), "--stations", str(st),
                 "--max-line-bytes", str(4 << 20), "--json")
    assert result.exit_code == 0, result.output
    codes = {r["codes"] for r in hub_json(tmp_path / "lake", "rejects")}
    assert "line-too-long" not in codes  # read, then rejected for its unit, not its length


def test_a_small_file_with_one_bad_byte_keeps_every_good_row(tmp_path: Path) -> None:
    data = tmp_path / "ev.csv"
    data.write_bytes(
        b"Charging event,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,"
        b"Cost,Site,Group,Model\n"
        b"1,500,1,05/06/2018,11:00,05/06/2018,13:30,12.5,0,Site A,G,M\n"
        b"2,500,2,05/06/2018,12:00,05/06/2018,12:30,1,0,Caf\xe9 Site,G,M\n"
        b"3,501,1,04/06/2018,10:00,04/06/2018,11:00,3,0,Site B,G,M\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "ev-sessions", str(data))
    assert run["reconciles"] and run["read"] == 3 and run["rejected"] == 1
    ids = hub_json(lake, "sql", "SELECT id FROM EVChargingSession ORDER BY id")
    assert [r["id"].rsplit(":", 1)[1] for r in ids] == ["1", "3"]
    rejects = hub_json(lake, "rejects")
    assert [(r["record"], r["codes"]) for r in rejects] == [("line 3", "bad-encoding")]
    assert "Caf\\xe9 Site" in rejects[0]["raw"]


def test_boardings_rejects_a_bad_byte_and_a_3mb_line_alone(tmp_path: Path) -> None:
    data = tmp_path / "b.csv"
    data.write_bytes(b"stop_id,date,hour,boardings\nS1,2024-05-01,1,3\n"
                     b"S\xe91,2024-05-01,2,3\nS1,2024-05-01,3,x\n"
                     b"S1,2024-05-01,5," + b"9" * (3 << 20) + b"\nS1,2024-05-01,4,5\n")
    lake = tmp_path / "lake"
    run = hub_json(lake, "ingest", "boardings", str(data))
    assert run["reconciles"] and run["written"] == 2 and run["rejected"] == 3
    rejects = {r["record"]: r["codes"] for r in hub_json(lake, "rejects")}
    assert rejects == {"line 3": "bad-encoding", "line 4": "type-error",
                       "line 5": "line-too-long"}


def test_a_wide_csv_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "wide.csv"
    data.write_text(",".join(f"c{i}" for i in range(100_000)) + "\n", encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "boardings", str(data))
    assert result.exit_code == 1
    assert "wide.csv, line 1: its header has 100,000 columns" in result.output
    assert "--max-columns" in result.output and "Traceback" not in result.output


def test_quoted_multi_line_records_across_blocks_match_pythons_csv(tmp_path: Path) -> None:
    """Blocks of 64 KiB cut through quoted records that span lines: every record is read once,
    with the line it starts on (as Python's csv module counts them)."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(["id", "text"])
    for i in range(6000):
        w.writerow([str(i), f"line {i}\nstill {i}, \"quoted\"" if i % 7 == 0 else f"t{i}"])
    path = tmp_path / "q.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    reader = csv.reader(io.StringIO(out.getvalue()))
    next(reader)
    expected, line = [], 2
    for rec in reader:
        expected.append((rec[0], rec[1], line))
        line = reader.line_num + 1
    rows, lines, bad = _read(path, block_size=1 << 16)
    assert not bad
    assert [(r["id"], r["text"], n) for r, n in zip(rows, lines, strict=True)] == expected


def test_a_side_file_with_a_bad_line_fails_naming_it(tmp_path: Path) -> None:
    zones = tmp_path / "zones.csv"
    zones.write_bytes(b"zone_id,lat,lon\nZ1,35.8,128.6\nZ\xe92,35.9,128.7\n")
    data = tmp_path / "pop.csv"
    data.write_text("zone_id,population\nZ1,100\n", encoding="utf-8")
    result = hub(tmp_path / "lake", "ingest", "population", str(data), "--zones", str(zones))
    assert result.exit_code == 1
    assert "zones.csv, line 3: bad-encoding: byte b'\\xe9' at column 2" in result.output


def test_a_trailing_empty_unnamed_field_is_no_field(tmp_path: Path) -> None:
    """Rows that end with a delimiter (Seoul's card exports) or a header that does: the empty
    last field is dropped; a row without it in such a file is malformed, alone."""
    rows_end = tmp_path / "rows.csv"
    rows_end.write_text('"a","b"\n"1","2",\n"3","4",\n"5","6"\n', encoding="utf-8")
    stream = open_csv(rows_end)
    table = stream.read_all()
    assert stream.names == ["a", "b"] and table.to_pydict() == {"a": ["1", "3"],
                                                                 "b": ["2", "4"]}
    assert [(b.line, b.code) for b in stream.take_invalid()] == [(4, "malformed-record")]
    header_end = tmp_path / "header.csv"
    header_end.write_text("a,b,\n1,2,\n3,4,\n", encoding="utf-8")
    stream = open_csv(header_end)
    assert stream.names == ["a", "b"]
    assert stream.read_all().to_pydict() == {"a": ["1", "3"], "b": ["2", "4"]}


@pytest.mark.parametrize("text, encoding, named", [
    # an OpenAQ-style long file saved by Excel on a Korean Windows
    ("도시,측정소,date.utc,parameter,value,unit\n서울,종로구,2024-05-01T01:00:00Z,pm25,7,"
     "㎍/㎥\n", "cp949", "CP949"),
    # Norwegian air-quality export (luftkvalitet.info layout) saved as Latin-1
    ("Målested;Komponent;Tid;Verdi;Enhet\nTromsø Hansjordnesbukta;NO2;2024-05-01 01:00;14;"
     "µg/m³\nÅlesund Grimmerhaugen;PM2.5;2024-05-01 01:00;3;µg/m³\n", "latin-1", "CP1252"),
    # German UBA station export saved as Latin-1
    ("Stationsname;Schadstoff;Messwert;Maßeinheit\nMünchen/Landshuter Allee;Stickstoffdioxid;41;"
     "µg/m³\nKöln Turiner Straße;Feinstaub;12;µg/m³\n", "latin-1", "CP1252"),
    # Excel's "Unicode text" export
    ("city,location,date.utc\nOslo,Kirkeveien,2024-05-01T01:00:00Z\n", "utf-16", "UTF-16"),
])
def test_a_file_that_is_not_utf8_names_its_likely_encoding(tmp_path: Path, text: str,
                                                           encoding: str, named: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(InputError, match="is not UTF-8 text") as info:
        open_csv(path)
    assert info.value.hint is not None
    assert f"it looks like {named}: convert it first, e.g. iconv -f {named} -t UTF-8 " \
           f"export.csv > export.csv.utf8" == info.value.hint


def test_bad_utf8_lines_under_an_ascii_header_name_the_likely_encoding(tmp_path: Path) -> None:
    path = tmp_path / "card.csv"
    path.write_bytes("date,station,boardings\n20240501,서울역,51035\n20240501,시청역,20135\n"
                     "20240501,종각역,30111\n".encode("cp949"))
    stream = open_csv(path)
    assert stream.read_all().num_rows == 0
    bad = stream.take_invalid()
    assert [b.code for b in bad] == ["bad-encoding"] * 3
    assert all("it looks like CP949: convert it first, e.g. iconv -f CP949" in b.detail
               for b in bad)


def test_typed_columns_come_typed_only_from_blocks_where_every_cell_parses(
        tmp_path: Path) -> None:
    """``types``: a clean block comes with those columns parsed by Arrow; a block with one
    cell Arrow would read differently from the text rules (empty, ``nan``, no number) comes
    as text, and ``text_batch`` gives any batch back as text."""
    import pyarrow as pa

    from hubctl.types import TIMESTAMP

    path = tmp_path / "t.csv"
    lines = [_line(f"S{i % 7}", i, i / 4) for i in range(4000)]  # ~4 blocks of 64 KB
    lines[2500] = _line("S1", 1, 0.5).replace(b",0.5,", b",nan,")
    assert b",nan," in lines[2500]
    path.write_bytes(HEADER + b"".join(lines))
    types = {"value": pa.float64(), "date.utc": TIMESTAMP,
             "location": pa.dictionary(pa.int32(), pa.string())}
    stream = open_csv(path, block_size=1 << 16, types=types)
    kinds, values, first_lines = [], [], []
    for batch in stream:
        kinds.append(batch.schema.field("value").type)
        text = stream.text_batch(batch)
        assert text.schema.field("value").type == pa.string()
        assert text.column("location").to_pylist() == [
            str(v) for v in pa.array(batch.column("location")).cast(pa.string()).to_pylist()]
        values += text.column("value").to_pylist()
        first_lines.append(int(stream.lines[0]))
    assert len(kinds) >= 3 and kinds.count(pa.string()) == 1 and pa.float64() in kinds
    assert values == [line.split(b",")[5].decode() for line in lines]
    assert first_lines[0] == 2


# ------------------------------------------------------------------ the read-ahead thread

def _reading_threads() -> list[str]:
    """The reading thread and its parsing threads alive."""
    return sorted({t.name.split("-parse")[0] for t in threading.enumerate()
                   if t.name.startswith(READ_AHEAD_THREAD)})


def _everything(path: Path, **kw: object) -> tuple[list[tuple], list[str]]:
    """Per batch, all a stream shows of it (rows, text rows, line numbers, bad lines in their
    order, bytes for progress), and the reading threads alive at the first batch."""
    stream = open_csv(path, **kw)  # type: ignore[arg-type]
    seen, threads = [], []
    for k, batch in enumerate(stream):
        if k == 0:
            threads = _reading_threads()
        seen.append((batch.to_pylist(), stream.text_batch(batch).to_pylist(),
                     stream.lines.tolist(), stream.take_invalid(), stream.take_read_bytes(),
                     str(batch.schema.field(batch.schema.names[-2]).type)))
    return seen, threads


def _mixed() -> bytes:
    """OpenAQ lines: runs of 3,000 clean lines (blocks Arrow reads typed in one go) between
    runs of 1,000 with a bad byte, a malformed row, an over-long line, a quoted line break, an
    empty line, a value that is no number and an empty station every 47 lines."""
    out = [HEADER]
    for i in range(16_000):
        k = i % 47
        if i % 4000 < 3000 or k > 6:
            out.append(_line(f"S{i % 50}", i, i % 90 + 0.5))
        elif k == 0:
            out.append(LATIN1)
        elif k == 1:
            out.append(b"X,XX,only,four\n")
        elif k == 2:
            out.append(_line("S1", i, 1.0).replace(b"S1", b"S" * 5000))
        elif k == 3:
            out.append(_line("S1", i, 1.0).replace(b"S1", b'"S\n1"'))
        elif k == 4:
            out.append(b"\n")
        elif k == 5:
            out.append(_line("S1", i, 1.0).replace(b",1.0,", b",n/a,"))
        else:
            out.append(_line("S1", i, 1.0).replace(b",S1,", b",,"))
    return b"".join(out)


@pytest.mark.parametrize("data,kw", [
    (_mixed(), {"limits": CsvLimits(max_line_bytes=2048), "batch_rows": 100}),
    (_messy(20_000, long_at=15_000), {"limits": CsvLimits(max_line_bytes=2000),
                                      "batch_rows": 100}),
])
def test_the_read_ahead_thread_shows_what_the_serial_read_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes,
        kw: dict[str, object]) -> None:
    """Overlapped (the default: the next block is parsed on the reading thread) and serial
    (HUBCTL_CSV_READ_AHEAD=0): the same batches, each with the same rows, text, line numbers,
    bad lines in the same order and bytes read; the thread runs only while the stream does.
    Byte ranges read overlapped give the same blocks (nothing is cut after the first quoted
    over-long record)."""
    import pyarrow as pa

    path = tmp_path / "m.csv"
    path.write_bytes(data)
    if data.startswith(HEADER):
        kw = {**kw, "types": {"value": pa.float64(),
                              "location": pa.dictionary(pa.int32(), pa.string())}}
    monkeypatch.setenv(READ_AHEAD_ENV, "0")
    serial, none = _everything(path, **kw)
    monkeypatch.delenv(READ_AHEAD_ENV)
    overlapped, threads = _everything(path, **kw)
    assert none == [] and threads == [READ_AHEAD_THREAD] and _reading_threads() == []
    assert len(serial) > 5 and overlapped == serial
    codes = {b.code for batch in serial for b in batch[3]}
    assert {"malformed-record", "bad-encoding"} <= codes
    if "types" in kw:  # blocks read typed and blocks read as text; over-long lines
        assert {batch[5] for batch in serial} == {"double", "string"}
        assert "line-too-long" in codes
    spans = split_csv(path, 70_000, limits=kw["limits"], batch_rows=100)  # type: ignore[arg-type]
    assert len(spans) > 1
    ranges = [_everything(path, span=span, **kw)[0] for span in spans]
    assert [b[:4] for r in ranges for b in r] == [b[:4] for b in serial]  # the same blocks


def test_an_error_on_the_reading_thread_is_raised_where_the_next_batch_is_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip member damaged past its first blocks: both reads hand out the same batches, then
    fail with the same message; no reading thread is left and the member is closed."""
    data = HEADER + b"".join(_line(f"S{i % 50}", i, (i * 7919) % 997 / 10)
                             for i in range(40_000))
    zipped = tmp_path / "feed.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m.csv", data)
    raw = bytearray(zipped.read_bytes())
    at = int(len(raw) * 0.7)
    raw[at:at + 4000] = bytes(range(256)) * 15 + bytes(160)
    zipped.write_bytes(bytes(raw))
    outcomes = []
    for mode in ("0", "1"):
        monkeypatch.setenv(READ_AHEAD_ENV, mode)
        with zipfile.ZipFile(zipped) as z:
            handle = z.open("m.csv")
            stream = open_csv(zipped, handle=handle, block_size=1 << 16)
            rows = 0
            with pytest.raises(InputError, match="is damaged inside its zip file") as err:
                for batch in stream:
                    rows += batch.num_rows
            assert handle.closed and _reading_threads() == []
        outcomes.append((rows, str(err.value), err.value.hint))
    assert outcomes[0] == outcomes[1] and outcomes[0][0] > 10_000


def test_closing_or_leaving_a_stream_early_stops_its_reading_thread(tmp_path: Path) -> None:
    """A reader that stops after one batch (closing the stream, an exception in its loop as
    a KeyboardInterrupt would be, or a break): the thread ends with it, the file is closed."""
    path = tmp_path / "m.csv"
    path.write_bytes(HEADER + b"".join(_line(f"S{i % 50}", i, 1.0) for i in range(20_000)))
    stream = open_csv(path, block_size=1 << 16)
    batches = iter(stream)
    assert next(batches).num_rows and _reading_threads() == [READ_AHEAD_THREAD]
    stream.close()  # as meter-readings does after the batch it infers the interval from
    assert _reading_threads() == [] and stream.handle.closed
    assert next(iter(open_csv(path, block_size=1 << 16))).num_rows  # the iterator dropped
    assert _reading_threads() == []
    stream = open_csv(path, block_size=1 << 16)
    with pytest.raises(KeyboardInterrupt):
        for _batch in stream:
            raise KeyboardInterrupt
    assert _reading_threads() == [] and stream.handle.closed
    stream = open_csv(path, block_size=1 << 16)
    for _batch in stream:
        break
    assert _reading_threads() == [] and stream.handle.closed
