"""Where a GTFS feed's files come from (a zip or a folder) and how they are read.

Every file is read as text columns (an empty field is null) in bounded record batches.
Real feeds have a UTF-8 byte-order mark, quoted fields, blanks around the column names and
rows with fewer fields than the header; short rows are padded with empty fields (as every GTFS
consumer does), and rows with extra non-empty fields are kept aside as malformed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from hubctl.csvread import DEFAULT_LIMITS, BadLine, CsvLimits, CsvStream, open_csv
from hubctl.errors import InputError

__all__ = ["DEFAULT_ZIP_LIMITS", "FeedSource", "GtfsFile", "ZipLimits", "find_feeds"]

_BYTES_PER_ROW = 64  # block size = batch_rows rows of a typical stop_times.txt


@dataclass
class GtfsFile:
    """One file of a feed, opened: its column names and a stream of text batches."""

    name: str  # e.g. "stop_times.txt"
    where: str  # shown in messages: "feed.zip/stop_times.txt" or the file path
    columns: list[str]
    _stream: CsvStream | None
    bytes_per_row: float = float(_BYTES_PER_ROW)  # mean line length, from a sample

    def batches(self) -> Iterator[tuple[pa.Table, list[BadLine]]]:
        """(text table, lines kept out) per block. Short rows are padded into the table;
        rows with extra non-empty fields, bad encoding or over-long are kept out."""
        if self._stream is None:
            return
        for batch in self._stream:
            yield pa.Table.from_batches([batch]), self._stream.take_invalid()

    def read_all(self) -> tuple[pa.Table, list[BadLine]]:
        """The whole file (every file but stop_times.txt is read whole)."""
        tables, bad = [], []
        for table, rows in self.batches():
            tables.append(table)
            bad += rows
        schema = pa.schema([(c, pa.string()) for c in self.columns])
        out = pa.concat_tables(tables) if tables else schema.empty_table()
        return out.combine_chunks(), bad


@dataclass(frozen=True)
class ZipLimits:
    """Limits on what a zipped feed may unpack to, checked before a member is read."""

    max_unzipped_bytes: int = 4 << 30  # declared size of all members read together
    max_ratio: float = 100.0  # declared size / compressed size of one member over 1 MiB


DEFAULT_ZIP_LIMITS = ZipLimits()
_RATIO_FLOOR = 1 << 20  # tiny members compress absurdly well and are harmless

class FeedSource:
    """A GTFS feed as a zip file or a folder of ``.txt`` files."""

    def __init__(self, path: Path, limits: CsvLimits = DEFAULT_LIMITS,
                 zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.zip_limits = zip_limits
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        self.stored: dict[str, int] = {}  # bytes on disk per member (compressed in a zip)
        if path.is_dir():
            self.members = {p.name: p.stat().st_size for p in sorted(path.iterdir())
                            if p.is_file() and not p.name.startswith(".")}
            self.stored = dict(self.members)
        elif zipfile.is_zipfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"is a damaged zip file ({exc})", path=str(path),
                                 hint="download or copy it again; `unzip -t` tests it") from None
            self.members = self._zip_members()
            self._check_sizes()
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

    def _check_sizes(self) -> None:
        """Refuse, before reading, a zip whose members declare absurd sizes (a zip bomb)."""
        lim = self.zip_limits
        gtfs = {n: size for n, size in self.members.items() if n.endswith(".txt")}
        for name, size in gtfs.items():
            stored = max(self.stored.get(name, 0), 1)
            if size > _RATIO_FLOOR and size / stored > lim.max_ratio:
                raise InputError(
                    f"{name} would unpack from {stored:,} to {size:,} bytes, a compression "
                    f"ratio of {size / stored:,.0f}; the limit is {lim.max_ratio:,.0f}",
                    path=str(self.path), hint="this looks like a zip bomb, not a GTFS feed; "
                    "if you trust it, raise --max-zip-ratio")
        total = sum(gtfs.values())
        if total > lim.max_unzipped_bytes:
            raise InputError(
                f"its files would unpack to {total:,} bytes, more than the limit of "
                f"{lim.max_unzipped_bytes:,}", path=str(self.path),
                hint="if the feed really is that large, raise --max-unzipped-bytes")

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
        if not self.members.get(name):
            return []
        stream = self._stream(name, block_size=1 << 16)
        if stream is None:
            return []
        stream.close()
        return self._names(name, stream.names)

    def _names(self, name: str, names: list[str]) -> list[str]:
        if "" in names or len(set(names)) != len(names):
            raise InputError(f"has an empty or repeated column name in its header: "
                             f"{','.join(names)!r}", path=self.where(name), record="line 1",
                             hint="give every column a distinct name")
        return names

    def _stream(self, name: str, **kwargs: Any) -> CsvStream | None:
        """The member opened as a CSV stream; None when it holds not even a header."""
        try:
            return open_csv(self.where(name), handle=self._open(name), limits=self.limits,
                            empty_as_null=True, pad_short=True, header_only_ok=True, **kwargs)
        except InputError as exc:
            if "is empty" in str(exc):
                return None
            if "not UTF-8" in str(exc):
                raise InputError("is not UTF-8 text", path=self.where(name),
                                 hint=f"GTFS files must be UTF-8; {exc.hint}") from None
            raise

    def open(self, name: str, batch_rows: int) -> GtfsFile:
        """Open a member for reading in blocks of about ``batch_rows`` rows."""
        if not self.members.get(name):
            return GtfsFile(name, self.where(name), [], None)
        stream = self._stream(name, batch_rows=batch_rows)
        if stream is None:
            return GtfsFile(name, self.where(name), [], None)
        columns = self._names(name, stream.names)
        return GtfsFile(name, self.where(name), columns, stream, stream.bytes_per_row)

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
