"""``hubctl ingest ngsi-ld-broker``: pull entities from an NGSI-LD context broker.

Two modes, both paged with ``limit``/``offset`` and sent with the type's JSON-LD @context in a
``Link`` header (``--context`` overrides it):

- current state: ``GET /ngsi-ld/v1/entities?type=T`` (every page, each run);
- history (``--temporal``): ``GET /ngsi-ld/v1/temporal/entities?type=T&timerel=between&
  timeAt=S&endTimeAt=E`` with S the committed cursor minus the look-back (``--since`` or a day
  back on the first run) and E the run's start. A temporal entity (attributes as arrays of
  instances, or ``values`` pairs in the temporalValues form) becomes one entity per observation
  time, so each instant is one lake row.

The cursor is the newest observation time pulled; entities go through the same normalisation
and quality gate as NGSI-LD files (``adapters/ngsi_ld.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.adapterkit.entities import EntityReader, assumed_type
from hubctl.errors import UsageError
from hubctl.ledger import Cursor
from hubctl.ngsild import parse_time
from hubctl.pull import (
    CURSOR_KEY,
    HttpClient,
    PullError,
    format_cursor,
    newest,
    parse_cursor,
    pull_params,
    settings_from,
    window_start,
)
from hubctl.registry import registry

__all__ = ["ADAPTER", "NgsiLdBroker", "explode"]

DEFAULT_LOOKBACK_MIN = 10.0
DEFAULT_FIRST = timedelta(days=1)
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
_KEYS = ("id", "type", "@context")


def _instances(value: Any) -> list[Any]:
    """The instances of one temporal attribute (an array, one object, or temporalValues)."""
    out: list[Any] = []
    for inst in value if isinstance(value, list) else [value]:
        pairs = inst.get("values") if isinstance(inst, dict) else None
        if isinstance(pairs, list):
            meta = {k: v for k, v in inst.items() if k not in ("values", "type")}
            for pair in pairs:
                if isinstance(pair, list) and len(pair) >= 2:
                    out.append({"type": inst.get("type", "Property"), "value": pair[0],
                                "observedAt": pair[1], **meta})
        else:
            out.append(inst)
    return out


def _instant(text: Any) -> datetime | str | None:
    """An observedAt as aware UTC (naive read as UTC), the text itself if unparseable."""
    if not isinstance(text, str):
        return None
    return parse_time(text) or text


def explode(entity: Any) -> list[Any]:
    """One normalized entity per observation time of a temporal entity; attributes without
    ``observedAt`` (a fixed location, a name) ride with every instant."""
    if not isinstance(entity, dict):
        return [entity]
    base = {k: entity[k] for k in _KEYS if k in entity}
    static: dict[str, Any] = {}
    by_time: dict[datetime | str, dict[str, Any]] = {}
    for name, value in entity.items():
        if name in _KEYS:
            continue
        for inst in _instances(value):
            at = _instant(inst.get("observedAt")) if isinstance(inst, dict) else None
            if at is None:
                static[name] = inst
            else:
                by_time.setdefault(at, {})[name] = inst
    if not by_time:
        return [{**base, **static}]
    return [{**base, **static, **attrs} for _, attrs in sorted(by_time.items(), key=_order)]


def _order(item: tuple[datetime | str, Any]) -> tuple[int, str]:
    at = item[0]
    return (0, at.isoformat()) if isinstance(at, datetime) else (1, at)


def _newest(entities: list[Any]) -> datetime | None:
    times = (_instant(inst.get("observedAt")) for e in entities if isinstance(e, dict)
             for k, v in e.items() if k not in _KEYS for inst in _instances(v)
             if isinstance(inst, dict))
    return newest((t for t in times if isinstance(t, datetime)), None)


class NgsiLdBroker(Adapter):
    """The ``ngsi-ld-broker`` adapter."""

    name = "ngsi-ld-broker"
    entity_types: tuple[str, ...] = tuple(registry())
    summary = "Entities pulled from an NGSI-LD context broker: current state or history."
    example = ("hubctl ingest ngsi-ld-broker --url http://localhost:1026 "
               "--type AirQualityObserved --temporal")
    params: Sequence[click.Parameter] = ()
    pull_params: list[click.Parameter] = [
        click.Option(["--url"], metavar="URL", default=None,
                     help="Broker base URL, e.g. http://localhost:1026 (required)."),
        click.Option(["--type", "entity_type"], metavar="TYPE", default=None,
                     help="Entity type to pull, e.g. AirQualityObserved (required)."),
        click.Option(["--temporal"], is_flag=True,
                     help="Pull history from /ngsi-ld/v1/temporal/entities since the cursor."),
        click.Option(["--since"], metavar="TIME", default=None,
                     help="With --temporal: start of the first pull (ISO 8601; default a day "
                          "back); later runs start from the cursor."),
        click.Option(["--context"], metavar="URL", default=None,
                     help="JSON-LD @context for the Link header (default: the type's, from "
                          "schemas/)."),
        click.Option(["--tenant"], default=None, help="NGSILD-Tenant header."),
        click.Option(["--q", "query"], metavar="QUERY", default=None,
                     help="NGSI-LD q filter, e.g. 'no2>40'."),
        click.Option(["--token-env"], metavar="VAR", default=None,
                     help="Environment variable holding a bearer token."),
        click.Option(["--limit"], type=click.IntRange(1, 10_000), default=100,
                     show_default=True, help="Entities per page."),
        *pull_params(rate=10.0, lookback_help="With --temporal: minutes re-read before the "
                                              f"cursor (default {DEFAULT_LOOKBACK_MIN:g})."),
    ]

    def is_pull(self, options: dict[str, Any]) -> bool:
        """Always: this adapter reads no files."""
        return True

    def pull_source(self, options: dict[str, Any]) -> str:
        """The default source name: broker, type and mode (the cursor is kept under it)."""
        mode = ":temporal" if options.get("temporal") else ""
        return f"ngsi-ld-broker:{options.get('url')}:{options.get('entity_type')}{mode}"

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """Batches of the pulled entities; sets the cursor once every page is read."""
        url, type_ = options.get("url"), options.get("entity_type")
        if not url or not type_:
            raise UsageError("ngsi-ld-broker needs --url and --type",
                             hint="e.g. --url http://localhost:1026 --type AirQualityObserved")
        cursor: Cursor = options.get(CURSOR_KEY) or Cursor()
        client = HttpClient(settings_from(options))
        endpoint, query = self._request(str(url).rstrip("/"), str(type_), options, cursor, ctx)
        assumed = assumed_type(type_) if type_ in registry() else None
        label = client.shown(endpoint, query)
        lines: list[str] = []
        reached = None
        pages = _pages(client, endpoint, query, _headers(str(type_), options),
                       int(options.get("limit") or 100))
        for page in pages:
            entities = [e for raw in page for e in
                        (explode(raw) if options.get("temporal") else [raw])]
            reached = newest([_newest(page)], reached)
            lines.extend(json.dumps(e, ensure_ascii=False) for e in entities)
            if len(lines) >= ctx.batch_rows:
                yield from _read(label, lines, assumed, ctx)
                lines = []
        if lines:
            yield from _read(label, lines, assumed, ctx)
        if client.retried:
            ctx.warn(f"{label}: {client.retried} request(s) retried of {client.requests}")
        last = newest([parse_cursor(cursor.before)], reached)
        cursor.after = format_cursor(last) if last is not None else None

    @staticmethod
    def _request(url: str, type_: str, options: dict[str, Any], cursor: Cursor,
                 ctx: ReadContext) -> tuple[str, dict[str, Any]]:
        query: dict[str, Any] = {"type": type_}
        if options.get("query"):
            query["q"] = options["query"]
        if not options.get("temporal"):
            return f"{url}/ngsi-ld/v1/entities", query
        first = _since(options.get("since")) or ctx.arrival - DEFAULT_FIRST
        minutes = options.get("lookback")
        lookback = timedelta(minutes=DEFAULT_LOOKBACK_MIN if minutes is None else float(minutes))
        start = window_start(cursor.before, lookback, first) or first
        query.update(timerel="between", timeAt=format_cursor(start),
                     endTimeAt=format_cursor(ctx.arrival), timeproperty="observedAt")
        return f"{url}/ngsi-ld/v1/temporal/entities", query


def _read(label: str, lines: list[str], assumed: str | None, ctx: ReadContext) -> \
        Iterator[Batch]:
    """Batches of entities (JSON texts) read as one JSON array, as a file of them would be."""
    return EntityReader(label, ["[" + ",\n".join(lines) + "]"], assumed, ctx).batches()


def _since(value: Any) -> datetime | None:
    """``--since`` as aware UTC (naive read as UTC), or a UsageError."""
    if value in (None, ""):
        return None
    at = _instant(str(value))
    if not isinstance(at, datetime):
        raise UsageError(f"--since {value!r} is not a time",
                         hint="write ISO 8601, e.g. 2024-05-01T00:00:00Z")
    return at


def _headers(type_: str, options: dict[str, Any]) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    context = options.get("context")
    if not context and type_ in registry() and registry()[type_].context:
        context = registry()[type_].context[0]
    if context:
        headers["Link"] = f'<{context}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
    if options.get("tenant"):
        headers["NGSILD-Tenant"] = str(options["tenant"])
    if options.get("token_env"):
        token = os.environ.get(str(options["token_env"]), "").strip()
        if not token:
            raise UsageError(f"${options['token_env']} is not set",
                             hint=f"export {options['token_env']}=<bearer token>")
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _pages(client: HttpClient, endpoint: str, query: dict[str, Any], headers: dict[str, str],
           limit: int) -> Iterator[list[Any]]:
    """Each page of entities, by ``limit``/``offset``, until a short page or the count."""
    offset = 0
    while True:
        params = {**query, "limit": limit, "offset": offset, "count": "true"}
        resp = client.get(endpoint, params, headers)
        page = resp.json()
        if not isinstance(page, list):
            raise PullError(f"{resp.url}: expected a JSON array of entities, got "
                            f"{type(page).__name__}", hint="check --url (the broker's base URL)")
        yield page
        offset += len(page)
        total = resp.headers.get("NGSILD-Results-Count")
        if len(page) < limit or (total is not None and total.isdigit() and offset >= int(total)):
            return


ADAPTER = NgsiLdBroker()
