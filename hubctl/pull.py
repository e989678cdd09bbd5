"""HTTP pulls: GET with a rate limit, retries with exponential backoff, and cursors.

Standard library only (``urllib``). Errors are classified before retrying: timeouts, refused or
dropped connections, 5xx, 408 and 429 are transient (retried, honouring ``Retry-After``); any
other status is permanent and fails at once. Secrets (API keys sent as query parameters) never
appear in a message: give their parameter names to the client and they are shown as ``***``.

A cursor is an ISO 8601 UTC time, the newest observation a pull has seen; the next pull starts
a look-back window before it so that late data is read again (the lake key removes duplicates).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import click

from hubctl import running
from hubctl.adapter import Adapter, Batch, ReadContext
from hubctl.errors import HubError, UsageError
from hubctl.ledger import Cursor
from hubctl.ngsild import parse_time

__all__ = ["CURSOR_KEY", "STOP", "HttpClient", "PullError", "PullSettings", "Pulling", "Response",
           "format_cursor", "newest", "parse_cursor", "pull_params", "settings_from",
           "window_start"]

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 60.0
# Set when the process is asked to stop (SIGTERM during a run): pulls stop at their next
# request or wait instead of reading every remaining page first.
STOP = running.STOP


def _wait(seconds: float) -> None:
    """Sleep, but wake at once when STOP is set."""
    STOP.wait(seconds)


class PullError(HubError):
    """An HTTP pull that failed: the URL (secrets hidden), the status and what to do."""


@dataclass(frozen=True)
class PullSettings:
    """How a pull talks HTTP."""

    timeout: float = 30.0  # seconds per request
    retries: int = 4  # extra attempts after a transient failure
    backoff: float = 1.0  # first wait before a retry; doubles each time, at most MAX_BACKOFF
    rate: float = 5.0  # requests per second at most (0: no limit)
    user_agent: str = "hubctl"


@dataclass
class Response:
    """One successful HTTP response."""

    url: str  # with secrets hidden
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or a PullError naming the URL."""
        try:
            return json.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            snippet = self.body[:120].decode("utf-8", "replace")
            raise PullError(f"{self.url}: the answer is not JSON ({exc}): {snippet!r}") from None


@dataclass
class HttpClient:
    """GET with a rate limit and retries; ``secrets`` are query parameters never shown."""

    settings: PullSettings = field(default_factory=PullSettings)
    secrets: frozenset[str] = frozenset()
    sleep: Callable[[float], None] = _wait
    requests: int = 0  # requests sent, retries included
    retried: int = 0
    _last: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shown(self, url: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL with its query, secrets replaced by ``***``."""
        query = {k: ("***" if k in self.secrets else v) for k, v in (params or {}).items()}
        return url + ("?" + urllib.parse.urlencode(query) if query else "")

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url`` with ``params``; retries transient failures, raises PullError."""
        full = url + ("?" + urllib.parse.urlencode(params) if params else "")
        shown = self.shown(url, params)
        attempt = 0
        while True:
            self._pace()
            if STOP.is_set():
                raise PullError(f"{shown}: not requested, the run was asked to stop")
            self.requests += 1
            try:
                return self._once(full, shown, headers or {})
            except _Transient as exc:
                if attempt >= self.settings.retries:
                    raise PullError(
                        f"{shown}: {exc.what} after {attempt + 1} attempt(s)",
                        hint="the server or the network is failing; the run wrote what it had "
                             "and did not advance its cursor, so the next run reads it again"
                    ) from None
                wait = min(MAX_BACKOFF, self.settings.backoff * 2 ** attempt)
                self.sleep(max(wait, min(exc.retry_after or 0.0, MAX_BACKOFF)))
                attempt += 1
                self.retried += 1

    def _pace(self) -> None:
        """Wait so that requests are at least 1/rate seconds apart."""
        if self.settings.rate <= 0:
            return
        with self._lock:
            gap = 1.0 / self.settings.rate - (time.monotonic() - self._last)
            if gap > 0:
                self.sleep(gap)
            self._last = time.monotonic()

    def _once(self, full: str, shown: str, headers: Mapping[str, str]) -> Response:
        request = urllib.request.Request(full, headers={"User-Agent": self.settings.user_agent,
                                                        **headers})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as resp:
                body = resp.read()
                return Response(shown, resp.status, resp.headers, body)  # case-insensitive
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode("utf-8", "replace")
            if exc.code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {exc.code}",
                                 _retry_after(exc.headers.get("Retry-After"))) from None
            raise PullError(f"{shown}: HTTP {exc.code} {exc.reason}: {body.strip()[:200]}",
                            hint=_status_hint(exc.code)) from None
        except TimeoutError:
            raise _Transient(f"no answer within {self.settings.timeout:g} s (timeout)") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Transient(
                    f"no answer within {self.settings.timeout:g} s (timeout)") from None
            raise _Transient(f"cannot connect ({exc.reason})") from None
        except (http.client.HTTPException, ConnectionError) as exc:
            raise _Transient(f"connection broken ({type(exc).__name__}: {exc})") from None


class _Transient(Exception):
    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _status_hint(code: int) -> str | None:
    return {401: "check the credentials (service key or token) the source is configured with",
            403: "the key or token is not allowed to read this; check its permissions",
            404: "check the URL (--endpoint / --url) and the entity type"}.get(code)


# ---------------------------------------------------------------- cursors

def parse_cursor(text: str | None) -> datetime | None:
    """The time a cursor holds (ISO 8601), as aware UTC; None for no cursor."""
    if not text:
        return None
    value = parse_time(text)
    if value is None:
        raise HubError(f"the ledger holds a cursor that is not a time: {text!r}",
                       hint="pass --since to start from a given time")
    return value


def format_cursor(value: datetime) -> str:
    """A cursor as ISO 8601 UTC with a Z (``2024-05-01T09:00:00Z``)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window_start(cursor: str | None, lookback: timedelta, first: datetime | None) -> \
        datetime | None:
    """Where a pull starts: the committed cursor minus the look-back, else ``first``."""
    at = parse_cursor(cursor)
    return at - lookback if at is not None else first


def newest(times: Iterable[datetime | None], current: datetime | None) -> datetime | None:
    """The latest of ``current`` and ``times`` (None ignored)."""
    out = current
    for t in times:
        if t is not None and (out is None or t > out):
            out = t
    return out


# ---------------------------------------------------------------- options

def pull_params(rate: float, lookback_help: str) -> list[click.Parameter]:
    """The click options every pull takes: timeout, retries, backoff, rate, look-back."""
    return [
        click.Option(["--timeout"], type=click.FloatRange(min=0.001), default=30.0,
                     show_default=True, help="Seconds to wait for each answer."),
        click.Option(["--retries"], type=click.IntRange(min=0), default=4, show_default=True,
                     help="Retries of a request after a timeout, a dropped connection or a 5xx."),
        click.Option(["--backoff"], type=click.FloatRange(min=0), default=1.0,
                     show_default=True,
                     help="Seconds before the first retry; doubles each retry (at most 60)."),
        click.Option(["--rate"], type=click.FloatRange(min=0), default=rate, show_default=True,
                     help="Requests per second at most (0: no limit)."),
        click.Option(["--lookback"], type=click.FloatRange(min=0), default=None,
                     help=lookback_help),
    ]


def settings_from(options: Mapping[str, Any]) -> PullSettings:
    """PullSettings from adapter options (defaults where absent)."""
    d = PullSettings()
    try:
        return PullSettings(timeout=float(options.get("timeout") or d.timeout),
                            retries=int(options.get("retries", d.retries) or 0),
                            backoff=float(options.get("backoff", d.backoff) or 0),
                            rate=float(options.get("rate", d.rate) or 0))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"a pull option is not a number: {exc}") from None


# ---------------------------------------------------------------- binding a cursor

CURSOR_KEY = "_cursor"  # the option through which a bound pull adapter receives its Cursor


class Pulling(Adapter):
    """An adapter bound to the Cursor of one pull run: ``read`` passes it in the options
    (under ``CURSOR_KEY``), so the request's options, its fingerprint and the ledger never
    hold it."""

    def __init__(self, adapter: Adapter, cursor: Cursor) -> None:
        self.adapter, self.cursor = adapter, cursor
        self.name: str = adapter.name
        self.entity_types: tuple[str, ...] = adapter.entity_types
        self.summary: str = adapter.summary
        self.example: str = adapter.example
        self.params: Sequence[click.Parameter] = adapter.params
        self.batch_rows: int = adapter.batch_rows

    def read(self, inputs: Sequence[Path], options: dict[str, Any],
             ctx: ReadContext) -> Iterator[Batch]:
        """The bound adapter's batches, with the cursor in its options."""
        return self.adapter.read(inputs, {**options, CURSOR_KEY: self.cursor}, ctx)
