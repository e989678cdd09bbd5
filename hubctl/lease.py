"""Leases: the locks of a lake on object storage, shared by several machines.

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

The duration is ``HUBCTL_LEASE_SECONDS`` (default 60): the longest a crashed holder blocks
others.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid

from hubctl import running
from hubctl.s3 import S3Root

__all__ = ["Lease", "lease_seconds"]

DEFAULT_SECONDS = 60.0


def lease_seconds() -> float:
    """How long a lease lasts without renewal (``HUBCTL_LEASE_SECONDS``, default 60)."""
    try:
        return max(float(os.environ.get("HUBCTL_LEASE_SECONDS", DEFAULT_SECONDS)), 1.0)
    except ValueError:
        return DEFAULT_SECONDS


class Lease:
    """One lease object; :meth:`acquire` once, then :meth:`release`."""

    def __init__(self, path: S3Root, seconds: float | None = None) -> None:
        self.path = path
        self.seconds = seconds or lease_seconds()
        self.token = uuid.uuid4().hex
        self.holder = "another process"  # who holds it, after a failed acquire
        self.lost = False
        self._etag: str | None = None
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
        etag = self.path.create(self._body())
        if etag is None:
            seen = self.path.read_versioned()
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
        self._etag = etag
        self._thread = threading.Thread(target=self._renew, name=f"lease {self.path.name}",
                                        daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._guard:
                if self._stop.is_set() or self._etag is None:
                    return
                self._renewals += 1
                try:
                    etag = self.path.replace_if(self._body(), self._etag)
                except Exception as exc:  # noqa: BLE001 - the store is briefly unreachable
                    print(f"warning: could not renew the lease {self.path.name}: {exc}",
                          file=sys.stderr)
                    continue
                if etag is None:
                    self.lost = True
                    print(f"warning: lost the lease {self.path.name} (not renewed in time, "
                          "another process took it over)", file=sys.stderr)
                    return
                self._etag = etag

    def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours."""
        self._stop.set()
        with self._guard:
            etag, self._etag = self._etag, None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if etag is not None and not self.lost:
            self.path.delete_if(etag)


def _describe(data: bytes) -> tuple[str, float, bool]:
    """Who holds a lease (``pid 123 on host``), for how long it lasts, and whether its holder
    is certainly gone (a process of this machine that ended)."""
    try:
        content = json.loads(data)
        owner = content.get("owner", {})
        return (f"pid {owner.get('pid')} on {owner.get('host')}",
                float(content.get("seconds", lease_seconds())), running.gone(owner))
    except (ValueError, AttributeError, TypeError):
        return "another process", lease_seconds(), False
