"""The adapter toolkit: what every adapter needs besides its format's own knowledge.

An adapter (:mod:`hubctl.adapter`) imports these from here, never from another adapter. One
helper per idea:

- which column holds which field: :func:`parse_map` (the one ``--map COLUMN=FIELD`` parser,
  giving ``{field: column}``), :func:`check_mapped`, :func:`resolve_columns` (header names
  matched by :func:`fold`), :func:`text_column`;
- rejects: :class:`Problems`, the one reject collector (one reason per field and record,
  records named by file line), with :func:`missing`, :func:`type_error` and
  :func:`line_numbers`;
- text cells to lake values: :func:`blank_to_null`, :func:`unescape_html`,
  :func:`json_text`, :func:`postal_address` (SDM's address object), :func:`extra_json` (the
  ``_extra`` column: unmapped source columns as one JSON object per row, empty cells left out);
  positions from columns or text: :func:`coordinates`;
- entity ids for whole columns: :func:`urns` (one URN builder, the vectorised
  :func:`hubctl.ngsild.entity_id`), their namespaces: :func:`check_feed_id`, :func:`feed_slug`;
- NGSI-LD entities to batches: :mod:`hubctl.adapterkit.entities` (imported on its own: it
  brings the NGSI-LD model);
- time zones and local wall-clock times to UTC, with one documented rule for times that do not
  exist or happen twice: :mod:`hubctl.localtime` (:func:`zone`, :func:`local_to_utc`);
- reading CSV with one bad line costing one line: :mod:`hubctl.csvread`, and the one CSV
  batch loop over it: :func:`csv_batches` (:func:`field_batches` renames the header to the
  adapter's fields first; :func:`open_text_csv` and :func:`read_text_csv` fall back to
  CP949); side files of coordinates: :func:`read_places`;
- time texts: :func:`parse_times` (ISO 8601 or a strptime format, zone-less texts local to a
  zone), an ``hour`` column: :func:`parse_hours`.
"""

from __future__ import annotations

from hubctl.adapterkit.batches import (
    csv_batches,
    field_batches,
    open_text_csv,
    read_text_csv,
)
from hubctl.adapterkit.columns import (
    check_mapped,
    fold,
    parse_map,
    resolve_columns,
    text_column,
)
from hubctl.adapterkit.ids import check_feed_id, feed_slug, local_ids, urns
from hubctl.adapterkit.positions import coordinates
from hubctl.adapterkit.problems import Problems, line_numbers, missing, type_error
from hubctl.adapterkit.sites import Places, read_places
from hubctl.adapterkit.text import (
    blank_to_null,
    extra_json,
    json_text,
    postal_address,
    unescape_html,
)
from hubctl.adapterkit.times import parse_hours, parse_times

__all__ = ["Places", "Problems", "blank_to_null", "check_feed_id", "check_mapped", "coordinates",
           "csv_batches", "extra_json", "feed_slug", "field_batches", "fold", "json_text",
           "line_numbers", "local_ids", "missing", "open_text_csv", "parse_hours", "parse_map",
           "parse_times", "postal_address", "read_places", "read_text_csv", "resolve_columns",
           "text_column", "type_error", "unescape_html", "urns"]
