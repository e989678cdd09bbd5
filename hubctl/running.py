"""What a run in progress leaves for other processes: a marker file, and the stop token.

A run that has started writes ``<lake>/_running/<run id>.json``: who runs it (host, boot, pid
and the pid's start time, so a reused pid is not mistaken for it), its ledger row as it stands,
and the counts of what it has committed so far (a checkpoint after each commit: one small file
replaced, tens of microseconds). The run removes its marker when it records its end. A marker
whose process is gone is a run that was killed (``kill -9``, an OOM kill, a power cut): the
next command that opens the lake finds it with one directory listing and the ledger records
the run as ``interrupted`` (:func:`hubctl.ledger.mark_interrupted`).

:data:`STOP` is set when the process is asked to stop (SIGTERM): the ingest engine checks it
between batches and ends the run after the commit in progress; pulls stop at their next request.

On a lake on object storage (``s3://``) the markers are objects. A run renews its marker every
third of ``HUBCTL_LEASE_SECONDS`` (a heartbeat), so that a run on another machine counts as
gone once its marker is older than that by the store's clock; a dead run is claimed with a
conditional put of ``<run id>.claim``, so that it is recorded once.

Standard library only: every command reads the marker folder, ``hubctl sql`` included.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubctl.s3 import S3Root

__all__ = ["RUNNING", "STOP", "Marker", "any_markers", "clear_stop", "dead_markers", "gone", "me",
           "remove", "request_stop", "stop_reason", "write"]

RUNNING = "_running"
STOP = threading.Event()
_REASON: list[str] = []


def request_stop(reason: str) -> None:
    """Ask the run in progress to stop after its current commit (a signal handler calls it:
    it only sets a flag, so no exception interrupts a commit or a ledger write)."""
    _REASON[:] = [reason]
    STOP.set()


def stop_reason() -> str:
    """Why the run was asked to stop, e.g. ``SIGTERM``."""
    return _REASON[0] if _REASON else "a stop request"


def clear_stop() -> None:
    """Forget a stop request (the next run starts afresh)."""
    STOP.clear()
    _REASON.clear()


@functools.cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def me() -> dict[str, Any]:
    """This process as a marker names it."""
    return dict(_me(os.getpid()))


@functools.cache
def _me(pid: int) -> tuple[tuple[str, Any], ...]:
    return (("host", os.uname().nodename), ("boot", _boot_id()), ("pid", pid),
            ("pid_start", _started(pid)))


def gone(owner: dict[str, Any]) -> bool:
    """True when the process a marker (or a lease) names has certainly ended (False when it
    may live, or runs on another host: only that host can tell)."""
    if owner.get("host") != os.uname().nodename:
        return False
    if owner.get("boot") and _boot_id() and owner["boot"] != _boot_id():
        return True
    pid = int(owner.get("pid") or 0)
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    start = _started(pid)
    return owner.get("pid_start") is not None and start is not None \
        and start != owner["pid_start"]


def _folder(root: Path | S3Root) -> Path | S3Root:
    return root / RUNNING


def write(root: Path | S3Root, run_id: str, content: dict[str, Any]) -> None:
    """Create or replace run ``run_id``'s marker atomically (a reader never sees half)."""
    folder = _folder(root)
    text = json.dumps({"owner": me(), **content}, default=str)
    if isinstance(folder, S3Root):
        with _BEATING_GUARD:
            (folder / f"{run_id}.json").write_text(text)
            _BEATING[folder / f"{run_id}.json"] = text
        _heartbeat()
        return
    tmp = folder / f".{run_id}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
    except FileNotFoundError:  # the first marker of this lake
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / f"{run_id}.json")


def remove(root: Path | S3Root, run_id: str) -> None:
    """Remove run ``run_id``'s marker (its end is in the ledger)."""
    path = _folder(root) / f"{run_id}.json"
    if isinstance(path, S3Root):
        with _BEATING_GUARD:
            _BEATING.pop(path, None)
            path.unlink()
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_BEATING: dict[S3Root, str] = {}  # remote markers of this process's runs, renewed
_BEATING_GUARD = threading.Lock()


@functools.cache
def _heartbeat() -> threading.Thread:
    """Start (once) the thread that rewrites this process's remote markers every third of the
    lease time, so other machines know their runs are alive."""
    from hubctl.lease import lease_seconds

    def beat() -> None:
        while not STOP_BEATING.wait(lease_seconds() / 3):
            with _BEATING_GUARD:
                for path, text in list(_BEATING.items()):
                    with contextlib.suppress(Exception):
                        path.write_text(text)

    thread = threading.Thread(target=beat, name="run markers", daemon=True)
    thread.start()
    return thread


STOP_BEATING = threading.Event()


@dataclass
class Marker:
    """The marker of a run whose process is gone, claimed by this process; ``content`` is
    None when a crash left it unreadable."""

    path: Path | S3Root
    run_id: str
    content: dict[str, Any] | None
    claim: S3Root | None = None  # on object storage: the claim object beside the marker

    def done(self) -> None:
        """The run's end is recorded: drop the claimed marker."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.claim is not None:
            self.claim.unlink()


def any_markers(root: Path | S3Root) -> bool:
    """True when the lake has markers (runs in progress or that died): one directory listing,
    so that a command only imports the ledger when there is something to check."""
    folder = _folder(root)
    if isinstance(folder, S3Root):
        return folder.is_dir()
    try:
        return any(not n.startswith(".") for n in os.listdir(_folder(root)))
    except OSError:
        return False


def dead_markers(root: Path | S3Root) -> Iterator[Marker]:
    """Markers of runs whose process is gone, each claimed by renaming it (so that two
    commands opening the lake at once record the run once). Costs one directory listing when
    there are none; a folder that cannot be written (a read-only lake) yields nothing."""
    folder = _folder(root)
    if isinstance(folder, S3Root):
        yield from _dead_remote(folder)
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = folder / name
        if name.endswith(".json"):
            claimable = _owner_gone(path)
        elif ".claim-" in name:  # claimed by a command that died before recording it
            claimable = _pid_gone(name.rsplit("-", 1)[1])
        else:  # a checkpoint cut short by a kill: `.<run id>.<pid>.tmp`
            if name.endswith(".tmp") and _pid_gone(name.rsplit(".", 2)[1]):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            continue
        if not claimable:
            continue
        claimed = folder / f"{name.split('.', 1)[0]}.claim-{os.getpid()}"
        try:
            os.rename(path, claimed)
        except OSError:  # another command claimed it first, or a read-only lake
            continue
        yield Marker(claimed, name.split(".", 1)[0], _read(claimed))


def _dead_remote(folder: S3Root) -> Iterator[Marker]:
    """:func:`dead_markers` on object storage: a marker of this host whose process is gone,
    or of any host whose heartbeat stopped a lease time ago, claimed by a conditional put."""
    from hubctl.lease import lease_seconds

    stale = lease_seconds()
    for path in list(folder.iterdir()):
        if path.suffix != ".json":
            continue
        seen = path.read_versioned()
        if seen is None:
            continue
        try:
            content = json.loads(seen[0])
        except ValueError:
            content = None
        owner = content.get("owner", {}) if isinstance(content, dict) else {}
        mine = owner.get("host") == os.uname().nodename
        if not (gone(owner) if mine else seen[2] > stale):
            continue
        run_id = path.name[: -len(".json")]
        claim = folder / f"{run_id}.claim"
        body = json.dumps({"owner": me()}).encode()
        if claim.create(body) is None:
            held = claim.read_versioned()  # a claimer that died: take its claim over
            if held is None or held[2] <= stale or claim.replace_if(body, held[1]) is None:
                continue
        yield Marker(path, run_id, content if isinstance(content, dict) else None, claim)


def _read(path: Path) -> dict[str, Any] | None:
    """A marker's content; None when a crash (a power cut) left it unreadable."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def _owner_gone(path: Path) -> bool:
    """True when a marker's process has ended. A marker is replaced atomically, so one that
    cannot be read was cut short by a crash of its machine: its process is gone too."""
    content = _read(path)
    return content is None or gone(content.get("owner", {}))


def _pid_gone(pid: str) -> bool:
    return pid.isdigit() and gone({**me(), "pid": int(pid), "pid_start": None})
