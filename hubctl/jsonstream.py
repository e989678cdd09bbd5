"""Entities from a JSON document read in bounded memory: one object, an array of objects, or
JSON Lines (several top-level values, one per line).

The text arrives in chunks; each element is decoded on its own with
``json.JSONDecoder.raw_decode`` as soon as it is complete, so a 200 MB array never exists as
one Python list. Memory holds one chunk (:data:`CHUNK_CHARS`) and the element being read,
which may not be longer than ``max_element_chars``.

What each record is called: ``/i`` for the i-th element of an array, ``/`` for a document
that is one object, ``line N`` (the line of the file where it starts) for JSON Lines. A value
that does not parse yields a ValueError in place of the object: for JSON Lines reading goes on
at the next line (one bad line costs one line); in an array the rest of the array cannot be
found again, so the rest is one record. A value nested deeper than Python can decode (a
hostile ``[[[[...`` 100,000 levels deep) is a ValueError of the same kind.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hubctl.errors import InputError

__all__ = ["CHUNK_CHARS", "MAX_ELEMENT_CHARS", "JsonError", "Record", "iter_records",
           "read_chunks"]

CHUNK_CHARS = 1 << 20
MAX_ELEMENT_CHARS = 64 << 20  # one entity (one array element or one line) at most
_WS = " \t\r\n"
_TAIL = 64  # an error this close to the end of what is held may be a cut-off value

Record = tuple[str, Any, str]  # (pointer, object or ValueError, raw text)
_DECODER = json.JSONDecoder()


class JsonError(ValueError):
    """A value that does not parse, and the file line where parsing stopped."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def read_chunks(path: Path, size: int = 1 << 20) -> Iterator[str]:
    """The text of a UTF-8 file in chunks; InputError naming the offset of a bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the reader stops early
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", path=str(path),
                         hint="check that the file exists and that you may read it") from None
    with f:
        while True:
            data = f.read(size)
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                    f"{offset + exc.start})", path=str(path),
                    hint="JSON must be UTF-8; convert the file first, e.g. "
                         "`iconv -f CP949 -t UTF-8 in.json > out.json`") from None
            offset += len(data)
            if text:
                yield text
            if not data:
                return


class _Buffer:
    """Text held from the chunk stream, with the line number of its first character."""

    def __init__(self, chunks: Iterable[str], limit: int) -> None:
        self.chunks = iter(chunks)
        self.text = ""
        self.pos = 0  # where reading is, in text
        self.line = 1  # line of text[0]
        self.eof = False
        self.limit = limit
        self.first = True

    def more(self) -> bool:
        """Read another chunk (dropping what was consumed); False at the end."""
        if self.eof:
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return False
        self.line += self.text.count("\n", 0, self.pos)
        self.text = self.text[self.pos:]
        self.pos = 0
        if self.first:
            chunk, self.first = chunk.lstrip("\ufeff"), False
        self.text += chunk
        return True

    def skip_ws(self) -> str:
        """The next character that is not white space ('' at the end); pos stays on it."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def line_at(self, pos: int) -> int:
        """The file line of position ``pos`` of text."""
        return self.line + self.text.count("\n", 0, pos)

    def value(self) -> tuple[Any, str] | JsonError:
        """Decode the value at pos (reading more while it may be cut off); pos moves past
        it. A value that does not decode is a ValueError; pos then stays at its start."""
        while True:
            start = self.pos
            try:
                obj, end = _DECODER.raw_decode(self.text, start)
            except json.JSONDecodeError as exc:
                if self._cut_off(exc) and len(self.text) - start <= self.limit and self.more():
                    continue
                return self._error(exc)
            except RecursionError:
                line = self.line_at(start)
                return JsonError(f"not readable: the value at line {line} is nested more "
                                 "deeply than the recursion limit allows", line)
            if end == len(self.text) and not self.eof and self.more():
                continue  # a number such as 12 may go on in the next chunk: decode again
            raw = self.text[start:end]
            self.pos = end
            return obj, raw

    def _cut_off(self, exc: json.JSONDecodeError) -> bool:
        if self.eof:
            return False
        rest = self.text[exc.pos:]
        if len(rest.strip()) < _TAIL:
            return True
        return exc.msg.startswith("Unterminated string") and "\n" not in rest

    def _error(self, exc: json.JSONDecodeError) -> JsonError:
        line = self.line_at(exc.pos)
        column = exc.pos - (self.text.rfind("\n", 0, exc.pos) + 1) + 1
        return JsonError(f"not JSON: {exc.msg} at line {line} column {column}", line)

    def skip_line(self) -> str:
        """Move pos past the end of its line; the text skipped (at most ``limit``)."""
        skipped = ""
        while True:
            at = self.text.find("\n", self.pos)
            end = at if at >= 0 else len(self.text)
            if len(skipped) < self.limit:
                skipped += self.text[self.pos:end]
            if at >= 0:
                self.pos = at + 1
                return skipped.rstrip("\r")
            self.pos = len(self.text)
            if not self.more():
                return skipped.rstrip("\r")


def iter_records(chunks: Iterable[str], max_element_chars: int = MAX_ELEMENT_CHARS
                 ) -> Iterator[Record]:
    """(pointer, object or ValueError, raw text) for every entity of a document."""
    buf = _Buffer(chunks, max_element_chars)
    first = buf.skip_ws()
    if not first:
        return
    if first == "[":
        buf.pos += 1
        yield from _array(buf)
    else:
        yield from _values(buf)


def _array(buf: _Buffer) -> Iterator[Record]:
    i = 0
    while True:
        c = buf.skip_ws()
        if c == "]" and i == 0:
            buf.pos += 1
            break
        got = buf.value()
        if isinstance(got, JsonError):  # the rest of the array cannot be found again
            yield f"line {got.line}", got, ""
            return
        yield f"/{i}", got[0], got[1]
        i += 1
        c = buf.skip_ws()
        if c == ",":
            buf.pos += 1
            continue
        if c == "]":
            buf.pos += 1
            break
        where = buf.line_at(buf.pos)
        yield f"line {where}", ValueError(
            f"not JSON: expecting ',' or ']' after element {i - 1} at line {where}"), ""
        return
    if buf.skip_ws():
        where = buf.line_at(buf.pos)
        yield f"line {where}", ValueError(f"not JSON: extra data after the array at line "
                                          f"{where}"), ""


def _values(buf: _Buffer) -> Iterator[Record]:
    """One document, or JSON Lines (a bad line costs that line). Until a line holds an
    object, what was read is held: if none ever does, the text is one broken document and
    its first error is the one record."""
    held: list[Record] = []
    found = False
    while buf.skip_ws():
        line = buf.line_at(buf.pos)
        got = buf.value()
        if isinstance(got, JsonError):
            record: Record = (f"line {line}", got, buf.skip_line())
        else:
            record = (f"line {line}", got[0], got[1])
        if found:
            yield record
        elif isinstance(record[1], dict):
            found = True
            if not held and not buf.skip_ws():  # one object and nothing after it
                yield "/", record[1], record[2]
                return
            yield from held
            yield record
        else:
            held.append(record)
    if not found:
        errors = [r for r in held if isinstance(r[1], JsonError)]
        if errors:
            yield f"line {errors[0][1].line}", errors[0][1], ""
        elif len(held) == 1:
            yield "/", held[0][1], held[0][2]
        else:
            yield from held
