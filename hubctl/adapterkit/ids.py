"""Entity ids for whole columns: the one vectorised URN builder.

:func:`urns` gives, for every value ``x`` of a column, exactly what
:func:`hubctl.ngsild.entity_id` gives for ``f"{namespace}:{x}"`` (or ``x`` without a
namespace): ids that need no percent-encoding are joined by a string kernel, and only the
others (blanks, non-ASCII names, ``/``, ``%``, values that are already URNs) go through
``entity_id``, each distinct one once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hubctl.errors import UsageError
from hubctl.ngsild import URN_PREFIX, entity_id

__all__ = ["check_feed_id", "feed_slug", "local_ids", "urns"]

_SAFE = "-._~!$&'()*+,;=:@"  # what hubctl.ngsild.entity_id leaves unencoded
_PLAIN = r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$"  # needs no percent-encoding and no strip
_GENERIC_NAMES = {"gtfs", "google-transit", "googletransit", "feed", "gtfs-static", "static",
                  "data", "latest", "current"}
_FEED_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _encoded(prefix: str, namespace: str, local: pa.Array | pa.ChunkedArray,
             encode: Callable[[str], str]) -> pa.Array:
    """``encode(namespace:x)`` per value, with ``prefix + quote(namespace:x)`` as the fast path
    for values that need no encoding; null stays null."""
    if isinstance(local, pa.ChunkedArray):
        local = local.combine_chunks()
    if pa.types.is_dictionary(local.type):
        local = local.cast(pa.string())
    lead = f"{quote(namespace.lstrip(), safe=_SAFE)}:" if namespace else ""
    joined = pc.binary_join_element_wise(prefix + lead, local, "")
    plain = pc.fill_null(pc.match_substring_regex(local, _PLAIN), True)
    if not namespace:  # a value that is already an NGSI-LD URN is kept as it is
        plain = pc.and_(plain, pc.invert(pc.fill_null(pc.starts_with(local, URN_PREFIX),
                                                      False)))
    if pc.all(plain).as_py() is not False:
        return joined
    odd = np.flatnonzero(~np.asarray(plain.to_numpy(zero_copy_only=False), bool))
    done: dict[str, str] = {}
    values = []
    for i in odd:
        word = local[int(i)].as_py()
        if word not in done:
            done[word] = encode(f"{namespace}:{word}" if namespace else word)
        values.append(done[word])
    mask = np.zeros(len(local), bool)
    mask[odd] = True
    return pc.replace_with_mask(joined, pa.array(mask), pa.array(values, pa.string()))


def urns(type_name: str, local: pa.Array | pa.ChunkedArray, namespace: str = "") -> pa.Array:
    """``entity_id(type_name, f"{namespace}:{x}")`` (``entity_id(type_name, x)`` without a
    namespace) for every value ``x`` of ``local``; null stays null.

    The namespace is what keeps ids of two sources apart: a GTFS feed id (:func:`check_feed_id`,
    :func:`feed_slug`), a facility kind, an
    agency. ``urns("GtfsStop", ids, "daegu")`` gives ``urn:ngsi-ld:GtfsStop:daegu:<id>``.
    """
    return _encoded(f"{URN_PREFIX}{type_name}:", namespace, local,
                    lambda text: entity_id(type_name, text))


def local_ids(namespace: str, local: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The local part of :func:`urns` (``quote(f"{namespace}:{x}")``, as ``entity_id`` encodes
    it), for ids built further by string kernels (a stop time's ``<feed>:<trip>:<seq>``)."""
    return _encoded("", namespace, local, lambda text: quote(text.strip(), safe=_SAFE))


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
