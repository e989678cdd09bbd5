"""What a text file that is not UTF-8 is likely encoded in, for messages that say how to
convert it (``iconv -f CP949 -t UTF-8``). Detection uses charset-normalizer on a sample of the
file's first bytes and runs only when a file has already failed to decode: nothing is guessed
for files that read."""

from __future__ import annotations

import codecs

__all__ = ["convert_hint", "guess_encoding"]

# Among code pages that decode the sample to the same text, the one people most likely used
# wins (a German Latin-1 sample decodes alike in cp1250 and cp1252).
_PREFERRED = ("utf_16", "utf_16_le", "utf_16_be", "utf_32", "cp949", "euc_kr", "cp1252",
              "latin_1", "iso8859_15", "shift_jis", "cp932", "euc_jp", "gb18030", "gbk", "big5",
              "cp1251", "koi8_r", "cp1250", "iso8859_2")
_RARE = ("cp4", "cp7", "cp8", "mac_", "hp_", "cp1006", "cp1125", "cp273", "cp5", "cp6",
         "cp037", "cp1026", "cp1140")
_ICONV = {"utf_16": "UTF-16", "utf_16_le": "UTF-16LE", "utf_16_be": "UTF-16BE",
          "utf_32": "UTF-32", "latin_1": "ISO-8859-1", "iso8859_15": "ISO-8859-15",
          "iso8859_2": "ISO-8859-2", "euc_kr": "EUC-KR", "euc_jp": "EUC-JP",
          "shift_jis": "SHIFT_JIS", "koi8_r": "KOI8-R", "gb18030": "GB18030"}


def guess_encoding(sample: bytes) -> str | None:
    """The likely encoding of ``sample`` as a Python codec name, or None when nothing fits."""
    from charset_normalizer import from_bytes

    if not sample:
        return None
    matches = list(from_bytes(sample[:1 << 16]))
    if not matches:
        return None
    best = matches[0]
    # the detections that explain the sample as well as the best one, DOS and Mac code pages
    # left out (a short Latin-1 sample reads as cp852 as well as cp1252); the most coherent
    # wins, a tie goes to the code page people most likely used
    tied = [m for m in matches if abs(m.chaos - best.chaos) < 0.01]
    ranked: list[tuple[float, int, str]] = []
    for m in tied:
        for name in (m.encoding, *m.could_be_from_charset):
            if name.startswith(_RARE):
                continue
            rank = _PREFERRED.index(name) if name in _PREFERRED else len(_PREFERRED)
            ranked.append((-round(m.coherence, 1), rank, name))
    return min(ranked)[2] if ranked else str(best.encoding)


def iconv_name(codec: str) -> str:
    """The name iconv knows ``codec`` by (CP949, ISO-8859-1, UTF-16LE, ...)."""
    name = codecs.lookup(codec).name.replace("-", "_")
    return _ICONV.get(name, name.upper().replace("_", "-"))


def convert_hint(sample: bytes, file: str = "FILE") -> str:
    """What to do with a file that is not UTF-8: its likely encoding and the iconv line."""
    codec = guess_encoding(sample)
    if codec is None:
        return (f"convert it to UTF-8 first, e.g. iconv -f <its encoding> -t UTF-8 {file} > "
                f"{file}.utf8")
    name = iconv_name(codec)
    return (f"it looks like {name}: convert it first, e.g. iconv -f {name} -t UTF-8 {file} > "
            f"{file}.utf8")
