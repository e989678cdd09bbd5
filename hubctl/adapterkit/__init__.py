"""The adapter toolkit: what every adapter needs besides its format's own knowledge.

An adapter (:mod:`hubctl.adapter`) imports these from here, never from another adapter. One
helper per idea:

- which column holds which field: :func:`parse_map` (the one ``--map COLUMN=FIELD`` parser,
  giving ``{field: column}``), :func:`check_mapped`, :func:`resolve_columns` (header names
  matched by :func:`fold`), :func:`text_column`;
- entity ids for whole columns: :func:`urns` (one URN builder, the vectorised
  :func:`hubctl.ngsild.entity_id`);
- time zones and local wall-clock times to UTC, with one documented rule for times that do not
  exist or happen twice: :mod:`hubctl.localtime` (:func:`zone`, :func:`local_to_utc`);
- reading CSV with one bad line costing one line: :mod:`hubctl.csvread`.
"""

from __future__ import annotations

from hubctl.adapterkit.columns import (
    check_mapped,
    fold,
    parse_map,
    resolve_columns,
    text_column,
)
from hubctl.adapterkit.ids import local_ids, urns

__all__ = ["check_mapped", "fold", "local_ids", "parse_map", "resolve_columns", "text_column",
           "urns"]
