"""Text columns to lake values: blanks to null, HTML entities, JSON literals and the ``_extra``
column of source columns the schema does not map. Vectorised; Python touches only distinct
texts that need it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from hubctl.arrowkit import blank

__all__ = ["blank_to_null", "extra_json", "json_text", "postal_address", "unescape_html"]


def blank_to_null(text: pa.Array) -> pa.Array:
    """Trimmed text, null where it means 'no value' (empty, '-', NA, ...)."""
    return pc.if_else(blank(text), pa.scalar(None, pa.string()), pc.utf8_trim_whitespace(text))


def unescape_html(text: pa.Array) -> pa.Array:
    """HTML entities (``&amp;``, ``&#39;``) decoded; each distinct affected text once."""
    has = pc.fill_null(pc.match_substring_regex(text, r"&(#\d+|#[xX][0-9a-fA-F]+|[A-Za-z]+);"),
                       False)
    if not pc.any(has).as_py():
        return text
    import html  # loaded for texts that hold entities only

    encoded = pc.dictionary_encode(text)
    words = [None if w is None else html.unescape(w) for w in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(words, pa.string()), encoded.indices)


def json_text(text: pa.Array) -> pa.Array:
    """Each text as a JSON string literal (null stays null)."""
    esc = pc.replace_substring(text, "\\", "\\\\")
    esc = pc.replace_substring(esc, '"', '\\"')
    for char, code in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        esc = pc.replace_substring(esc, char, code)
    if pc.any(pc.fill_null(pc.match_substring_regex(esc, r"[\x00-\x1f]"), False)).as_py():
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False)
                         for v in text.to_pylist()], pa.string())
    return pc.binary_join_element_wise('"', esc, '"', "")


def postal_address(text: pa.Array) -> pa.Array:
    """Each address text as the JSON of Smart Data Models' ``address`` (schema.org's
    PostalAddress, an object): ``{"streetAddress": "<text>"}``; null stays null. SDM's
    schemas have no plain-text address, so the whole line is the street address."""
    return pc.binary_join_element_wise('{"streetAddress":', json_text(text), "}", "")


def extra_json(parts: Sequence[tuple[str, pa.Array]], n: int) -> pa.Array:
    """One JSON object per row of the named text columns, leaving out null cells (null where
    every cell is null): the ``_extra`` column for source columns the schema does not map."""
    if not parts:
        return pa.nulls(n, pa.string())
    pieces = [pc.if_else(pc.is_null(v), "", pc.binary_join_element_wise(
        json.dumps(name, ensure_ascii=False) + ":", json_text(v), "")) for name, v in parts]
    body = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, ",")
    body = pc.replace_substring_regex(body, r",{2,}", ",")
    body = pc.replace_substring_regex(body, r"^,|,$", "")
    return pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()),
                      pc.binary_join_element_wise("{", body, "}", ""))
