"""NGSI-LD entity documents: one entity, an array of entities, or JSON Lines.

Files are ``.json``, ``.jsonld`` or ``.jsonl``; entities may be in normalized, concise or
keyValues form and of any type that has a schema in ``schemas/`` (the type may be a short name,
an expanded IRI or a compacted one). Each entity is normalized (units converted to the
schema's), dated by its time index and turned into a lake row; attributes the schema does not
know are kept in ``_extra``.

Real documents, the official Smart Data Models examples among them, have known defects. They
are reported once per file through the run's warnings, never fatal: timestamps without a time
zone (read as UTC), no ``observedAt``, attributes not in the schema, and names that differ from
a schema attribute only in case (``typeofLocation`` for ``typeOfLocation``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit.entities import EntityReader, assumed_type
from hubctl.jsonstream import read_chunks
from hubctl.registry import registry

__all__ = ["ADAPTER", "NgsiLd"]

class NgsiLd(Adapter):
    """The ``ngsi-ld`` adapter."""

    name = "ngsi-ld"
    entity_types: tuple[str, ...] = tuple(registry())
    summary = ("NGSI-LD entities (normalized, concise or keyValues): one entity, an array, "
               "or JSON Lines.")
    example = "hubctl ingest ngsi-ld AirQualityObserved.example-normalized.jsonld"
    batch_rows = 25_000  # rows are dicts until a batch is built: keeps memory bounded
    params: Sequence[click.Parameter] = (
        click.Option(["--type"], metavar="TYPE", default=None,
                     help="Entity type assumed for entities that have no type, "
                          "e.g. AirQualityObserved."),
    )

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Batches of rows per file and entity type, at most ``ctx.batch_rows`` records each."""
        assumed = assumed_type(options.get("type"))
        for path in inputs:
            yield from EntityReader(path, read_chunks(path), assumed, ctx).batches()
            ctx.advance(path.stat().st_size)


ADAPTER = NgsiLd()
