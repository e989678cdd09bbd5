"""``hubctl ingest airkorea --api``: pull real-time measurements from the AirKorea API.

Two operations of data.go.kr's ``ArpltnInforInqireSvc``: ``getCtprvnRltmMesureDnsty`` (every
station of a province, ``--sido``) and ``getMsrstnAcctoRltmMesureDnsty`` (one station's recent
hours, ``--station``, repeatable). The service key comes from the environment variable named by
``--service-key-env`` (never from a file or the command line, so it stays out of shell history,
hub.toml and the ledger). Pages are read with ``pageNo``/``numOfRows`` until ``totalCount``;
transient answers (HTTP 5xx, timeouts, resultCode 01/02/04/05) are retried with backoff, other
resultCodes fail the run with the API's message and what to do.

The cursor is the newest ``dataTime`` pulled. Per-station pulls ask for the shortest
``dataTerm`` (DAILY, MONTH, 3MONTH) covering the cursor minus the look-back, and stop paging once
a page is older than that (the API lists the newest hour first).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import click

from hubctl.adapter import Batch, ReadContext
from hubctl.adapters.airkorea import (
    AQO,
    Entry,
    Stations,
    _batches,
    _entries,
    _items,
    _xml_error,
    parse_data_time,
)
from hubctl.errors import UsageError
from hubctl.ledger import Cursor
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

__all__ = ["DEFAULT_ENDPOINT", "PARAMS", "pull", "source_name"]

DEFAULT_ENDPOINT = "https://apis.data.go.kr/B552584/ArpltnInforInqireSvc"
BY_SIDO, BY_STATION = "getCtprvnRltmMesureDnsty", "getMsrstnAcctoRltmMesureDnsty"
DEFAULT_KEY_ENV = "AIRKOREA_SERVICE_KEY"
DEFAULT_LOOKBACK_H = 3.0
TRANSIENT_CODES = {"01", "02", "04", "05"}  # application, DB, HTTP error, service time-out
TERMS = ((timedelta(hours=24), "DAILY"), (timedelta(days=31), "MONTH"))

PARAMS: list[click.Parameter] = [
    click.Option(["--api"], is_flag=True,
                 help="Pull from the AirKorea API instead of reading files (needs --sido or "
                      "--station, and the service key in $AIRKOREA_SERVICE_KEY)."),
    click.Option(["--sido"], metavar="NAME", default=None,
                 help="Province for getCtprvnRltmMesureDnsty, e.g. 서울, 대구, 전국."),
    click.Option(["--endpoint"], default=DEFAULT_ENDPOINT, show_default=True,
                 help="Base URL of ArpltnInforInqireSvc."),
    click.Option(["--service-key-env"], metavar="VAR", default=DEFAULT_KEY_ENV,
                 show_default=True,
                 help="Environment variable holding the data.go.kr service key."),
    click.Option(["--num-rows"], type=click.IntRange(1, 10_000), default=100,
                 show_default=True, help="Items per page (numOfRows)."),
    *pull_params(rate=5.0, lookback_help="Hours re-read before the cursor for late or revised "
                                         f"data (default {DEFAULT_LOOKBACK_H:g})."),
]


def source_name(options: dict[str, Any]) -> str:
    """The default ledger source of a pull: the operation and what it asks for."""
    if options.get("sido"):
        return f"airkorea:api:sido={options['sido']}"
    return "airkorea:api:station=" + ",".join(sorted(options.get("station") or ()))


def _service_key(options: dict[str, Any]) -> str:
    var = str(options.get("service_key_env") or DEFAULT_KEY_ENV)
    key = os.environ.get(var, "").strip()
    if not key:
        raise UsageError(f"no AirKorea service key: ${var} is not set",
                         hint=f"export {var}=<your data.go.kr service key> (keep it out of "
                              "hub.toml and of scripts under version control)")
    # data.go.kr hands out the key URL-encoded and decoded; send it decoded (urlencode re-encodes)
    return urllib.parse.unquote(key) if "%" in key else key


def _queries(options: dict[str, Any], term: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """(operation, query, station asked for) of each pull."""
    sido, stations = options.get("sido"), list(options.get("station") or ())
    if bool(sido) == bool(stations):
        raise UsageError("airkorea --api needs either --sido NAME or --station NAME",
                         hint="e.g. --sido 대구, or --station 수창동 --station 태전동")
    if sido:
        return [(BY_SIDO, {"sidoName": sido, "ver": "1.0"}, None)]
    return [(BY_STATION, {"stationName": s, "dataTerm": term, "ver": "1.0"}, s)
            for s in stations]


def _term(start: datetime | None, now: datetime) -> str:
    """The shortest dataTerm reaching back to ``start``."""
    if start is None:
        return "DAILY"
    return next((name for span, name in TERMS if now - start <= span), "3MONTH")


def pull(options: dict[str, Any], stations: Stations, ctx: ReadContext) -> Iterator[Batch]:
    """Measurement batches of every page of every query; advances the run's cursor at the end.

    The key and the query are checked at once (a UsageError before anything is read)."""
    key = _service_key(options)
    _queries(options, "DAILY")
    return _pull(options, stations, ctx, key)


def _pull(options: dict[str, Any], stations: Stations, ctx: ReadContext,
          key: str) -> Iterator[Batch]:
    cursor: Cursor = options.get(CURSOR_KEY) or Cursor()
    hours = options.get("lookback")
    lookback = timedelta(hours=DEFAULT_LOOKBACK_H if hours is None else float(hours))
    start = window_start(cursor.before, lookback, None)
    client = HttpClient(settings_from(options), secrets=frozenset({"serviceKey"}))
    base = str(options.get("endpoint") or DEFAULT_ENDPOINT).rstrip("/")
    size = max(1, ctx.batch_rows)
    reached = None
    for operation, query, station in _queries(options, _term(start, ctx.arrival)):
        url = f"{base}/{operation}"
        entries: list[Entry] = []
        label = client.shown(url, query)
        for page, items, times in _pages(client, url, query, key,
                                         int(options.get("num_rows") or 100), start):
            if station:  # the per-station answer may leave the station out of its items
                items = [{"stationName": station, **i} if isinstance(i, dict) else i
                         for i in items]
            records = [(f"page {page} items[{i}]", item) for i, item in enumerate(items)]
            entries.extend(_entries(label, records, stations))
            reached = newest(times, reached)
            if len(entries) >= size:
                yield from _batches(AQO, label, entries, size)
                entries = []
        yield from _batches(AQO, label, entries, size)
    if client.retried:
        ctx.warn(f"airkorea: {client.retried} request(s) retried of {client.requests}")
    if reached is not None:
        cursor.after = format_cursor(max(reached, parse_cursor(cursor.before) or reached))


def _pages(client: HttpClient, url: str, query: dict[str, Any], key: str, rows: int,
           start: datetime | None) -> Iterator[tuple[int, list[Any], list[datetime | None]]]:
    """(page number, items, their times) until totalCount, an empty page, or a page older
    than ``start``."""
    page = 1
    while True:
        params = {"serviceKey": key, "returnType": "json", "numOfRows": rows, "pageNo": page,
                  **query}
        doc, shown = _page(client, url, params)
        items = _items(doc, shown, "")
        times = [parse_data_time(i.get("dataTime")) for i in items if isinstance(i, dict)]
        yield page, items, times
        total = _total(doc)
        old = start is not None and times and all(t is not None and t < start for t in times)
        if not items or len(items) < rows or (total is not None and page * rows >= total) or old:
            return
        page += 1


def _page(client: HttpClient, url: str, params: dict[str, Any]) -> tuple[Any, str]:
    """One page's JSON; resultCodes that mean a passing fault are retried with backoff."""
    settings = client.settings
    for attempt in range(settings.retries + 1):
        resp = client.get(url, params)
        text = resp.body.decode("utf-8-sig", "replace").strip()
        if text.startswith("<"):  # data.go.kr answers key problems in XML, even with json asked
            raise _xml_error(resp.url, text)
        doc = resp.json()
        code = _code(doc)
        if code not in TRANSIENT_CODES:
            return doc, resp.url
        if attempt < settings.retries:
            client.sleep(min(60.0, settings.backoff * 2 ** attempt))
            client.retried += 1
    raise PullError(f"{resp.url}: the API answered resultCode {code} after "
                    f"{settings.retries + 1} attempt(s)",
                    hint="the AirKorea service is failing; try again later (the cursor did not "
                         "advance)")


def _code(doc: Any) -> str | None:
    try:
        return str(doc["response"]["header"]["resultCode"]).strip()
    except (KeyError, TypeError):
        return None


def _total(doc: Any) -> int | None:
    try:
        return int(doc["response"]["body"]["totalCount"])
    except (KeyError, TypeError, ValueError):
        return None

