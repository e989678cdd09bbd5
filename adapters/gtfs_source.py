"""Where a GTFS feed's files come from (a zip or a folder) and how they are read.

Every file is read as text columns (an empty field is null) in bounded record batches.
Real feeds have a UTF-8 byte-order mark, quoted fields, blanks around the column names and
rows with fewer fields than the header; short rows are padded with empty fields (as every GTFS
consumer does), and rows with extra non-empty fields are kept aside as malformed.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv

from hubctl.errors import InputError, UsageError

__all__ = ["FeedSource", "GtfsFile", "MalformedRow", "feed_slug", "find_feeds"]

_BYTES_PER_ROW = 64  # block size = batch_rows rows of a typical stop_times.txt
_GENERIC_NAMES = {"gtfs", "google-transit", "googletransit", "feed", "gtfs-static", "static",
                  "data", "latest", "current"}
_FEED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def feed_slug(path: Path) -> str:
    """The default feed id of a zip or folder: its name without ``.zip``, lower case, runs of
    other characters than ``a-z 0-9 . _ -`` as one ``-``. A generic name (``gtfs.zip``,
    ``google_transit.zip``) is prefixed with the parent folder's name."""
    path = path.resolve()  # "." is the folder's own name
    name = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
    slug = _slug(name)
    if slug.replace("_", "-") in _GENERIC_NAMES and path.parent.name:
        slug = f"{_slug(path.parent.name)}-{slug}"
    return slug or "feed"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")


def check_feed_id(feed_id: str) -> str:
    """A usable ``--feed-id`` (it is part of every id), or a UsageError."""
    if not _FEED_ID.match(feed_id):
        raise UsageError(f"--feed-id {feed_id!r} is not usable as part of an entity id",
                         hint="use letters, digits, '.', '_' and '-' (no ':' or spaces), "
                              "e.g. --feed-id daegu-bus")
    return feed_id


@dataclass
class MalformedRow:
    """A row that has more non-empty fields than the header."""

    text: str
    fields: int


@dataclass
class GtfsFile:
    """One file of a feed, opened: its column names and a stream of text batches."""

    name: str  # e.g. "stop_times.txt"
    where: str  # shown in messages: "feed.zip/stop_times.txt" or the file path
    columns: list[str]
    _reader: pacsv.CSVStreamingReader | None
    _short: list[str] = field(default_factory=list)
    bytes_per_row: float = float(_BYTES_PER_ROW)  # mean line length, from a sample
    _handle: IO[bytes] | None = None

    def batches(self) -> Iterator[tuple[pa.Table, list[MalformedRow]]]:
        """(text table, malformed rows) per block; short rows are padded into the table."""
        schema = pa.schema([(c, pa.string()) for c in self.columns])
        if self._reader is None:
            return
        try:
            for batch in self._reader:
                table = pa.Table.from_batches([batch], schema=schema)
                padded, bad = self._take_short()
                if padded:
                    table = pa.concat_tables([table, pa.Table.from_pylist(padded, schema)])
                yield table, bad
        except pa.ArrowInvalid as exc:
            raise csv_error(exc, self.where) from None
        finally:
            if self._handle is not None:
                self._handle.close()
        padded, bad = self._take_short()
        if padded or bad:
            yield pa.Table.from_pylist(padded, schema), bad

    def read_all(self) -> tuple[pa.Table, list[MalformedRow]]:
        """The whole file (every file but stop_times.txt is read whole)."""
        tables, bad = [], []
        for table, rows in self.batches():
            tables.append(table)
            bad += rows
        schema = pa.schema([(c, pa.string()) for c in self.columns])
        out = pa.concat_tables(tables) if tables else schema.empty_table()
        return out.combine_chunks(), bad

    def _take_short(self) -> tuple[list[dict[str, str | None]], list[MalformedRow]]:
        padded: list[dict[str, str | None]] = []
        bad: list[MalformedRow] = []
        width = len(self.columns)
        for text in self._short:
            values = next(csv.reader([text]), [])
            if len(values) > width and any(v.strip() for v in values[width:]):
                bad.append(MalformedRow(text, len(values)))
                continue
            values = (values + [""] * width)[:width]
            padded.append({c: (v if v != "" else None)
                           for c, v in zip(self.columns, values, strict=True)})
        self._short.clear()
        return padded, bad


def csv_error(exc: Exception, where: str) -> InputError:
    """A pyarrow CSV failure as a message that says what to do."""
    text = str(exc)
    if "utf8" in text.lower():
        return InputError(f"is not UTF-8 text ({text})", path=where,
                          hint="GTFS files must be UTF-8; convert it first, e.g. "
                               "iconv -f cp949 -t utf-8 stops.txt > stops-utf8.txt")
    return InputError(f"cannot be read as CSV: {text}", path=where,
                      hint="fix or remove the damaged part of the file")


class FeedSource:
    """A GTFS feed as a zip file or a folder of ``.txt`` files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        self.stored: dict[str, int] = {}  # bytes on disk per member (compressed in a zip)
        if path.is_dir():
            self.members = {p.name: p.stat().st_size for p in sorted(path.iterdir())
                            if p.is_file() and not p.name.startswith(".")}
            self.stored = dict(self.members)
        elif zipfile.is_zipfile(path):
            self.zip = zipfile.ZipFile(path)
            self.members = self._zip_members()
        else:
            raise InputError("is not a GTFS feed: give a .zip file or a folder of .txt files",
                             path=str(path), hint="a GTFS feed holds agency.txt, stops.txt, "
                                                  "routes.txt, trips.txt, stop_times.txt, ...")

    def _zip_members(self) -> dict[str, int]:
        assert self.zip is not None
        infos = [i for i in self.zip.infolist() if not i.is_dir()
                 and not i.filename.startswith("__MACOSX/")]
        names = {i.filename for i in infos}
        if "stops.txt" not in names:  # feeds zipped with their folder: "gtfs/stops.txt"
            nested = sorted(n[:-len("stops.txt")] for n in names if n.endswith("/stops.txt"))
            if len(nested) == 1:
                self.prefix = nested[0]
        kept = [i for i in infos if i.filename.startswith(self.prefix)
                and "/" not in i.filename[len(self.prefix):]]
        self.stored = {i.filename[len(self.prefix):]: i.compress_size for i in kept}
        return {i.filename[len(self.prefix):]: i.file_size for i in kept}

    def where(self, name: str) -> str:
        """How messages name a member: ``feed.zip/stops.txt`` or the file's path."""
        return f"{self.path}/{self.prefix}{name}" if self.zip else str(self.path / name)

    def size(self, name: str) -> int:
        """Bytes of a member on disk (compressed in a zip): what the progress bar counts."""
        return self.stored.get(name, 0)

    def disk_share(self, name: str, rows: int, bytes_per_row: float) -> int:
        """Bytes on disk that ``rows`` rows of a member stand for (for the progress bar)."""
        text = self.members.get(name, 0)
        return int(rows * bytes_per_row * self.size(name) / text) if text else 0

    def _open(self, name: str) -> IO[bytes]:
        if self.zip is not None:
            return self.zip.open(self.prefix + name)
        return open(self.path / name, "rb")

    def header(self, name: str) -> list[str]:
        """Column names of a member (BOM, quotes and blanks removed); [] for an empty file."""
        with self._open(name) as f:
            first = f.readline()
        try:
            text = first.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("is not UTF-8 text", path=self.where(name),
                             hint="GTFS files must be UTF-8; convert it first, e.g. "
                                  "iconv -f cp949 -t utf-8") from None
        text = text.lstrip("\ufeff").rstrip("\r\n")
        if not text.strip():
            return []
        names = [n.strip() for n in next(csv.reader([text]), [])]
        if "" in names or len(set(names)) != len(names):
            raise InputError(f"has an empty or repeated column name in its header: {text!r}",
                             path=self.where(name), record="line 1",
                             hint="give every column a distinct name")
        return names

    def _bytes_per_row(self, name: str) -> float:
        """Mean line length of the first 256 KiB, so that a block holds about batch_rows."""
        with self._open(name) as f:
            sample = f.read(1 << 18)
        lines = sample.count(b"\n")
        return len(sample) / lines if lines > 1 else float(_BYTES_PER_ROW)

    def open(self, name: str, batch_rows: int) -> GtfsFile:
        """Open a member for reading in blocks of about ``batch_rows`` rows."""
        columns = self.header(name)
        gf = GtfsFile(name, self.where(name), columns, None)
        if not columns:
            return gf

        def keep(row: pacsv.InvalidRow) -> str:
            gf._short.append(row.text)
            return "skip"

        gf.bytes_per_row = self._bytes_per_row(name)
        block = max(int(max(batch_rows, 1) * gf.bytes_per_row * 0.97), 1 << 16)
        handle = self._open(name)
        try:
            gf._reader = pacsv.open_csv(
                handle,
                read_options=pacsv.ReadOptions(block_size=block, skip_rows=1,
                                               column_names=columns),
                parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                                 invalid_row_handler=keep),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns}, strings_can_be_null=True,
                    quoted_strings_can_be_null=True, null_values=[""]))
        except pa.ArrowInvalid as exc:
            handle.close()
            raise csv_error(exc, self.where(name)) from None
        gf._handle = handle
        return gf

    def close(self) -> None:
        """Close the zip file, if any."""
        if self.zip is not None:
            self.zip.close()


def find_feeds(inputs: list[Path]) -> list[Path]:
    """The feeds named by the inputs: zips and folders as they are; ``.txt`` files stand for
    the folder that holds them (``caltrain/*.txt`` is the caltrain folder)."""
    feeds: list[Path] = []
    for path in inputs:
        feed = path.parent if path.is_file() and path.suffix.lower() == ".txt" else path
        if feed not in feeds:
            feeds.append(feed)
    return feeds
