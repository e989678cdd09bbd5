"""``hubctl listen --workers N``: several listener processes sharing one source's subscription.

One listener process does about one core of Python work (paho's per-packet code, JSON parsing,
Arrow building, the engine), so a source that publishes faster than that is split across N
worker processes. Each worker subscribes with an MQTT shared subscription
(``$share/hubctl-<source>/<topic>``: the broker gives each message to one member of the group,
on MQTT 3.1.1 as on 5 with Mosquitto 2), under its own stable client id ``<client_id>-w<i>``
and persistent session, and runs the single-process listener's loop: micro-batches, commit,
answer, acknowledge. What that loop guarantees therefore holds per worker: a worker killed at
any moment is restarted under the same client id, its session is resumed and the broker sends
it again whatever it had not acknowledged (Mosquitto also queues new messages for a member that
is away, so they wait for it rather than go to the others).

Commits of one source's workers take turns (an ``flock`` on ``<lake>/_locks/``): the engine
classifies a batch against the table as committed, so a message published twice (a publisher's
own QoS 1 retry) that reaches two workers is still found duplicate, and the recovery of a
micro-batch cut off before its ledger row (run while holding that lock) never mistakes another
worker's commit in progress for a cut-off one. Parsing and Arrow building, the larger part of
the work, run in parallel.

The parent process holds the source's lock (a second ``hubctl listen`` of it exits 75), writes
the ``recovered`` ledger rows before starting the workers, restarts a worker that dies (1 s
doubling to 30 s, reset after a minute of running), and on SIGTERM/SIGINT stops the workers
(each commits and acknowledges what it holds), adds up their totals and returns.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from queue import Empty
from typing import Any

from hubctl.errors import HubError
from hubctl.lake import Lake
from hubctl.locks import hold
from hubctl.mqtt.client import Totals, listen, recover_cut_off, stderr_log
from hubctl.mqtt.settings import MqttSettings
from hubctl.s3 import S3Root

__all__ = ["CommitLock", "retired_sessions", "share_group", "supervise", "warn_retired",
           "worker_settings"]

RESTART_MIN, RESTART_MAX = 1.0, 30.0  # seconds before restarting a worker that died
HEALTHY_AFTER = 60.0  # a worker that ran this long before dying is restarted after RESTART_MIN
STOP_TIMEOUT = 120.0  # seconds the workers get to commit what they hold after SIGTERM
_SUMMED = ("messages", "batches", "read", "written", "updated", "duplicate", "rejected",
           "responses", "connects")


def retired_sessions(lake: Lake, s: MqttSettings) -> list[str]:
    """Client ids ``<client_id>-w<k>`` with ``k >= workers`` that committed for this source
    before (from the ledger's fingerprints ``mqtt:<client id>:<session>:<batch>``): shared
    subscription members this run leaves away."""
    from hubctl.duck import scan_sql, scratch
    from hubctl.errors import UnknownTable
    from hubctl.ledger import RUNS

    if not lake.exists(RUNS):
        return []
    try:
        files = lake.files(RUNS)
    except UnknownTable:
        return []
    if not files:
        return []
    con = scratch()
    try:
        rows = con.execute(
            f"SELECT DISTINCT regexp_extract(fingerprint, '^mqtt:(.*)-w([0-9]+):[^:]*:[0-9]+$', "
            f"['id', 'w']) AS m FROM {scan_sql(files, hive=False)} WHERE source = ? AND "
            "fingerprint LIKE 'mqtt:%'", [s.source]).fetchall()
    finally:
        con.close()
    found = {int(m["w"]) for (m,) in rows if m and m["id"] == s.client_id and m["w"]}
    keep = s.workers if s.workers > 1 else 0  # one worker uses the plain client id
    return [f"{s.client_id}-w{k}" for k in sorted(found) if k >= keep]


def warn_retired(lake: Lake, sources: list[MqttSettings], log: Callable[[str], None]) -> None:
    """Warn about worker sessions of an earlier, larger ``--workers`` that this run leaves
    away: the broker still gives them their share of the messages, which then wait for them."""
    for s in sources:
        retired = retired_sessions(lake, s)
        if retired:
            log(f"{s.source}: WARNING: worker session(s) {', '.join(retired)} committed before "
                "and are not started now; Mosquitto still gives each member of the shared "
                "subscription its share of the messages, which wait for it. Start them again "
                "(the earlier --workers) or retire them as docs/live.md says "
                "('Changing the number of workers')")


def share_group(source: str) -> str:
    """The shared-subscription group of a source's workers."""
    return f"hubctl-{source}"


def worker_settings(s: MqttSettings, index: int) -> MqttSettings:
    """Worker ``index``'s settings: its own client id (so its own persistent session) and the
    source's topics as shared subscriptions. One worker keeps the plain settings."""
    if s.workers == 1:
        return s
    return replace(s, client_id=f"{s.client_id}-w{index}",
                   topics=tuple(f"$share/{share_group(s.source)}/{t}" for t in s.topics))


class CommitLock:
    """A blocking ``flock`` that a source's workers take around each commit (re-entrant use
    is not needed: one commit at a time per process). The workers are processes of one
    machine, so for a lake on S3 the lock file is in that machine's temporary folder."""

    def __init__(self, root: Path | S3Root, source: str) -> None:
        folder = root / "_locks" if isinstance(root, Path) else Path(
            tempfile.gettempdir()) / "hubctl-locks" / hashlib.sha1(
                str(root).encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)[:60]
        self.path = folder / f"mqtt-commit-{slug}.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def __enter__(self) -> CommitLock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def _worker(root: Path | S3Root, settings: MqttSettings, index: int, recover: bool, parent: int,
            results: Any) -> None:
    """A worker process: the single-process listener on one worker's settings, until
    SIGTERM/SIGINT or until its parent is gone; its totals go to ``results``."""
    from hubctl.registry import get_type

    # the entity types as this process registers them, not unpickled copies
    settings = replace(settings, mappings={
        k: replace(m, entity_type=get_type(m.entity_type.name))
        for k, m in settings.mappings.items()})
    source = settings.source

    def log(text: str) -> None:
        stderr_log(f"[worker {index}] {text}")

    try:
        totals = listen(Lake(root), [settings], log, lambda: os.getppid() != parent,
                        locks=[f"source:{source}:w{index}"], commit_lock=CommitLock(root, source),
                        recover=recover)
    except HubError as exc:
        log(f"{source}: {exc}")
        sys.exit(exc.exit_code)
    except Exception as exc:  # a commit failed: nothing of that batch was acknowledged
        log(f"{source}: failed: {type(exc).__name__}: {exc}")
        sys.exit(1)
    summary = totals[0].summary()
    results.put((source, summary))


@dataclass
class _Slot:
    """One worker of one source, across its restarts."""

    settings: MqttSettings
    index: int
    proc: BaseProcess | None = None
    started: float = 0.0
    starts: int = 0
    failures: int = 0
    next_start: float = 0.0


def supervise(lake: Lake, sources: list[MqttSettings], log: Callable[[str], None],
              should_stop: Callable[[], bool] | None = None) -> list[Totals]:
    """Run each source's ``workers`` listener processes until SIGTERM or SIGINT (or
    ``should_stop()``), restarting those that die; then stop them (each commits what it holds)
    and return each source's totals. Holds every source's lock meanwhile (exit 75 if another
    process has one). Raises HubError if a worker does not stop in time (it was killed: what it
    held stays with the broker)."""
    lake.root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    totals = {s.source: Totals(s.source, workers=s.workers) for s in sources}
    with ExitStack() as stack:
        for s in sources:
            stack.enter_context(hold(lake.root, f"source:{s.source}"))
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, on_signal)
                        for sig in (signal.SIGTERM, signal.SIGINT)}
            stack.callback(lambda: [signal.signal(k, v) for k, v in previous.items()])
        recover_cut_off(lake, sources, log)
        warn_retired(lake, sources, log)
        # spawn, not fork: deltalake's tokio runtime (created by the recovery above) does not
        # survive a fork
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        slots = [_Slot(worker_settings(s, i), i) for s in sources for i in range(s.workers)]
        for s in sources:
            if s.workers > 1:
                log(f"{s.source}: {s.workers} workers sharing the subscription as "
                    f"$share/{share_group(s.source)}/... (client ids {s.client_id}-w0 to "
                    f"{s.client_id}-w{s.workers - 1})")

        def start(slot: _Slot) -> None:
            proc = ctx.Process(target=_worker, name=f"hubctl-listen-{slot.settings.source}-"
                               f"w{slot.index}", args=(lake.root, slot.settings, slot.index,
                                                        slot.starts > 0, os.getpid(), results))
            proc.start()
            slot.proc, slot.started = proc, time.monotonic()
            log(f"{slot.settings.source}: worker {slot.index} "
                f"{'restarted' if slot.starts else 'started'} (pid {proc.pid})")
            if slot.starts:
                totals[slot.settings.source].restarts += 1
            slot.starts += 1

        try:
            while not stop.is_set() and not (should_stop and should_stop()):
                now = time.monotonic()
                for slot in slots:
                    if slot.proc is not None and slot.proc.exitcode is not None:
                        _reaped(slot, now, log)
                    if slot.proc is None and now >= slot.next_start and not stop.is_set():
                        start(slot)  # (a Ctrl-C reaches the workers too: no restart then)
                _collect(results, totals)
                stop.wait(0.2)
        finally:
            late = _stop_all(slots, results, totals, log)
        if late:
            raise HubError(f"worker(s) {', '.join(late)} did not stop within {STOP_TIMEOUT:g} s "
                           "and were killed; what they held was not acknowledged and the broker "
                           "sends it again")
    return [totals[s.source] for s in sources]


def _reaped(slot: _Slot, now: float, log: Callable[[str], None]) -> None:
    """A worker ended while the parent runs: schedule its restart with backoff."""
    assert slot.proc is not None
    code = slot.proc.exitcode
    ran = now - slot.started
    slot.proc = None
    slot.failures = 1 if ran >= HEALTHY_AFTER else slot.failures + 1
    delay = min(RESTART_MAX, RESTART_MIN * 2 ** (slot.failures - 1))
    slot.next_start = now + delay
    how = f"was killed by signal {-code}" if code is not None and code < 0 else \
        f"exited with code {code}"
    log(f"{slot.settings.source}: worker {slot.index} {how} after {ran:.1f} s; restarting it "
        f"in {delay:g} s (its session keeps what it had not acknowledged)")


def _collect(results: Any, totals: dict[str, Totals], wait: float = 0.0) -> int:
    """Add the totals that stopped workers reported; return how many reports were read."""
    n = 0
    while True:
        try:
            source, summary = results.get(timeout=wait) if wait else results.get_nowait()
        except Empty:
            return n
        n += 1
        t = totals[source]
        for key in _SUMMED:
            setattr(t, key, getattr(t, key) + int(summary.get(key) or 0))
        if summary.get("last_run_id"):
            t.runs.append(summary["last_run_id"])


def _stop_all(slots: list[_Slot], results: Any, totals: dict[str, Totals],
              log: Callable[[str], None]) -> list[str]:
    """SIGTERM every worker, wait for each to commit and exit (reading their totals meanwhile,
    so none blocks on a full pipe); kill those that outlast STOP_TIMEOUT and name them."""
    running = [s for s in slots if s.proc is not None and s.proc.exitcode is None]
    for slot in running:
        assert slot.proc is not None
        slot.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    late, reports = [], 0
    for slot in running:
        assert slot.proc is not None
        while slot.proc.exitcode is None and time.monotonic() < deadline:
            slot.proc.join(0.1)
            reports += _collect(results, totals)
        if slot.proc.exitcode is None:
            slot.proc.kill()
            slot.proc.join(10)
            late.append(f"{slot.settings.source}/w{slot.index}")
        elif slot.proc.exitcode != 0:
            log(f"{slot.settings.source}: worker {slot.index} exited with code "
                f"{slot.proc.exitcode} while stopping")
    clean = sum(1 for s in running if s.proc is not None and s.proc.exitcode == 0)
    deadline = time.monotonic() + 5  # a worker's last totals may still be in the pipe
    while reports < clean and time.monotonic() < deadline:
        reports += _collect(results, totals, wait=0.1)
    return late
