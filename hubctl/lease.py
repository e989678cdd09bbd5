"""Leases: the locks of a lake on object storage, shared by several machines, and the fence
that keeps a holder who lost its lease from committing.

A lease is a small object in the lake (``_locks/<name>.lease``) holding its owner (host, pid, a
random token) and how long it lasts. It is taken with a conditional put (``If-None-Match: *``:
of two machines racing, exactly one creates it), renewed by a background thread every third of
its duration (``If-Match`` on the ETag the holder last wrote), and deleted on release (again
``If-Match``, so a holder never deletes a lease another machine took over). A holder that dies
(``kill -9``, a lost machine) stops renewing: once the lease is older than its duration by the
object store's own clock, the next taker replaces it (``If-Match`` on the expired version, so
only one taker wins). A holder on the taker's own machine whose process is gone (by pid and
pid start time, as run markers tell) is taken over at once, as ``flock`` would be. ``flock``
stays the lock of local lakes (:mod:`hubctl.locks`).

A holder that only stalls (a long GC pause, ``SIGSTOP``, a slow network) for longer than its
lease is taken over too, and wakes up believing it still holds the lock. Every Delta commit
made under leases (entity tables, ``_rejects``, lake check's rewrite, compaction, vacuum, a
pipeline's derived tables), and every wait for a table's commit lock and classification of
rows before one, is therefore fenced
(:class:`Fence`, from :func:`hubctl.locks.fence`: every lease the thread holds):

1. Each lease must have at least half its duration left by this process's own monotonic
   clock, counted from the sending of the request that last renewed it; if not, it is renewed
   there and then (``If-Match``), and a lease another process has taken over since raises
   LeaseLost, naming the lock, the table and the new holder. The run is recorded as failed.
2. The commit carries the leases' tokens in its commit info (``hubctl.leases``) and is made at
   exactly the version the writer read (no silent rebase onto newer commits). If another
   commit got there first, the commits in between are read: one made under the same lock with
   another token means the lock changed hands while this writer held it, and raises
   LeaseLost; anything else (compaction, another lock's writer) is retried at the new version,
   fenced again. So a writer that passed step 1 and then stalled past its lease before its
   commit landed cannot append rows a new holder has committed since: the new holder's commit
   under the same lock is in between, and the store's conditional put of the log entry lets
   exactly one of the two commits take each version. (Compaction, vacuum and a pipeline's
   overwrite of its derived tables take step 1 only: nothing they write was classified
   against the version they read.)

The ledgers (``_runs``, ``_pipeline_runs``, ``_exports``) are not fenced: a run writes only its
own row, true whatever became of its leases, so a run refused a commit can record that it
failed. What stays open: a commit whose holder stalled after step 1 and whose log entry lands
after a takeover but before the new holder's first commit to that table is kept. For an entity
table that is harmless (the new holder then classifies against it, and finds its rows
duplicate); for ``_rejects`` the new run rejects the same records again under its own run id.
And if such a commit lands just after the new holder read the table, the new holder's commit is
refused (LeaseLost, "committed ... after this process had read") rather than classified again.

The duration is ``HUBCTL_LEASE_SECONDS`` (default 60): the longest a crashed holder blocks
others.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hubctl import running
from hubctl.errors import LeaseLost
from hubctl.s3 import S3Root

if TYPE_CHECKING:
    from deltalake import CommitProperties, DeltaTable

__all__ = ["Fence", "Lease", "lease_seconds"]

DEFAULT_SECONDS = 60.0
#: A commit starts only with at least this share of the lease left (else it renews first).
MARGIN = 0.5
#: Commit info keys: the leases a commit was made under ({lock: token}) and who made it.
LEASES = "hubctl.leases"
HOLDER = "hubctl.holder"


def lease_seconds() -> float:
    """How long a lease lasts without renewal (``HUBCTL_LEASE_SECONDS``, default 60)."""
    try:
        return max(float(os.environ.get("HUBCTL_LEASE_SECONDS", DEFAULT_SECONDS)), 1.0)
    except ValueError:
        return DEFAULT_SECONDS


class Lease:
    """One lease object; :meth:`acquire` once, then :meth:`release`. ``name`` is the lock's
    name (``source:openaq``), as commits and errors give it."""

    def __init__(self, path: S3Root, seconds: float | None = None, name: str | None = None
                 ) -> None:
        self.path = path
        self.name = name or path.name
        self.seconds = seconds or lease_seconds()
        self.token = uuid.uuid4().hex
        self.holder = "another process"  # who holds it, after a failed acquire
        self.lost = False
        self._etag: str | None = None
        self._renewed = 0.0  # monotonic time the request that wrote our version was sent
        self._renewals = 0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps({"owner": running.me(), "token": self.token, "seconds": self.seconds,
                           "renewals": self._renewals}).encode()

    def acquire(self) -> bool:
        """Take the lease if it is free or expired; False (and :attr:`holder` set) if another
        holder's lease is current."""
        sent = time.monotonic()
        etag = self.path.create(self._body())
        if etag is None:
            seen = self.path.read_versioned()
            sent = time.monotonic()
            if seen is None:  # released between our put and our read: try once more
                etag = self.path.create(self._body())
            else:
                data, current, age = seen
                owner, seconds, dead = _describe(data)
                if age <= seconds and not dead:
                    self.holder = owner
                    return False
                etag = self.path.replace_if(self._body(), current)  # expired: take it over
                if etag is not None:
                    why = "whose process is gone" if dead else f"not renewed for {age:.0f} s"
                    print(f"note: took over the lease {self.path.name} of {owner}, {why}",
                          file=sys.stderr)
        if etag is None:
            return False
        self._etag, self._renewed = etag, sent
        self._thread = threading.Thread(target=self._renew, name=f"lease {self.path.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._guard:
                if self._stop.is_set() or self._etag is None or self.lost:
                    return
                try:
                    kept = self._renew_now()
                except Exception as exc:  # noqa: BLE001 - the store is briefly unreachable
                    print(f"warning: could not renew the lease {self.path.name}: {exc}",
                          file=sys.stderr)
                    continue
                if not kept:
                    print(f"warning: lost the lease {self.path.name} (not renewed in time, "
                          "another process took it over)", file=sys.stderr)
                    return

    def _renew_now(self) -> bool:
        """Renew the lease (the caller holds the guard); False, and :attr:`lost` set, when
        another process has replaced it since we last wrote it."""
        assert self._etag is not None
        self._renewals += 1
        sent = time.monotonic()
        etag = self.path.replace_if(self._body(), self._etag)
        if etag is None:
            self.lost = True
            return False
        self._etag, self._renewed = etag, sent
        return True

    def confirm(self, table: str, renew: bool = False) -> None:
        """Raise LeaseLost unless the lease is still ours with at least :data:`MARGIN` of its
        duration left by this process's clock, before a commit to ``table``: a lease the
        renewal thread has not renewed lately (the process stalled) is renewed now, as is
        any lease with ``renew``."""
        with self._guard:
            gap = time.monotonic() - self._renewed
            if self.lost or self._etag is None:
                pass
            elif gap <= self.seconds * (1 - MARGIN) and not renew:
                return
            else:
                try:
                    if self._renew_now():
                        return
                except Exception as exc:  # noqa: BLE001 - unreachable: we cannot tell
                    raise LeaseLost(
                        f"refused to commit to {table}: could not renew the lease of "
                        f"{self.name!r}, last renewed {gap:.1f} s ago ({exc})",
                        hint="the object store did not answer; nothing was committed, and "
                             "the run is recorded as failed; run it again") from None
        raise self._lost(table, gap)

    def _lost(self, table: str, gap: float) -> LeaseLost:
        """The error of a commit to ``table`` refused because another process took the
        lease over (``gap``: seconds since this process last renewed it)."""
        seen = None
        with contextlib.suppress(Exception):  # only to name the new holder
            seen = self.path.read_versioned()
        holder = _describe(seen[0])[0] if seen is not None else "another process"
        return LeaseLost(
            f"refused to commit to {table}: another machine took over the lease of "
            f"{self.name!r} ({holder} holds it or held it since); this process had not "
            f"renewed it for {gap:.1f} s (it stalled: a long pause, SIGSTOP, a slow network), "
            f"longer than the {self.seconds:g} s lease", hint=_AFTER_LOSS)

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        self._stop.set()
        with self._guard:
            etag, self._etag = self._etag, None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if etag is not None and not self.lost:
            self.path.delete_if(etag)


_AFTER_LOSS = ("nothing more was committed; a run is recorded as failed (what it committed "
               "before stays); the other machine may be doing the same work now: check the "
               "ledger (`hubctl sql \"SELECT * FROM _runs ORDER BY started_at\"`) before "
               "running it again")


class Fence:
    """The leases one Delta commit is made under (see the module's text): :meth:`check`
    before it, :meth:`properties` for it, :meth:`overtaken` after it lost a race."""

    def __init__(self, leases: Sequence[Lease]) -> None:
        self.leases = list(leases)

    def check(self, table: str) -> None:
        """Raise LeaseLost unless every lease is still ours for a while (step 1)."""
        for lease in self.leases:
            lease.confirm(table)

    def properties(self, exact: bool = True) -> CommitProperties:
        """deltalake's commit properties: the leases' tokens in the commit info and, if
        ``exact``, no retry at a newer version than the one read (step 2)."""
        from deltalake import CommitProperties

        return CommitProperties(
            custom_metadata={LEASES: {lease.name: lease.token for lease in self.leases},
                             HOLDER: _who(running.me())},
            max_commit_retries=0 if exact else None)

    def overtaken(self, dt: DeltaTable, read: int, table: str) -> None:
        """After a commit made at version ``read`` + 1 lost to another (``dt`` brought up to
        date): raise LeaseLost if a commit since ``read`` was made under one of our locks with
        another token, i.e. by another holder of it."""
        newer = dt.version() - read
        if newer <= 0:
            return
        ours = {lease.name: lease for lease in self.leases}
        for info in sorted(dt.history(newer), key=lambda i: int(i.get("version", 0))):
            held = info.get(LEASES)
            if int(info.get("version", 0)) <= read or not isinstance(held, dict):
                continue
            for name, token in held.items():
                lease = ours.get(name)
                if lease is None or token == lease.token:
                    continue
                lease.confirm(table, renew=True)  # LeaseLost if another process holds it now
                raise LeaseLost(  # still ours: a previous holder committed after its expiry
                    f"refused to commit to {table}: {info.get(HOLDER, 'another process')}, "
                    f"which held the lock {name!r} before this process took its lease over, "
                    f"committed version {info.get('version')} after this process had read "
                    f"version {read} (it stalled past its lease, then woke up)",
                    hint=_AFTER_LOSS)


def _who(owner: dict[str, Any]) -> str:
    """``pid 123 on host``."""
    return f"pid {owner.get('pid')} on {owner.get('host')}"


def _describe(data: bytes) -> tuple[str, float, bool]:
    """Who holds a lease (``pid 123 on host``), for how long it lasts, and whether its holder
    is certainly gone (a process of this machine that ended)."""
    try:
        content = json.loads(data)
        owner = content.get("owner", {})
        return (_who(owner), float(content.get("seconds", lease_seconds())),
                running.gone(owner))
    except (ValueError, AttributeError, TypeError):
        return "another process", lease_seconds(), False
