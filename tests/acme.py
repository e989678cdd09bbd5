"""The ACME oneM2M CSE (PyPI ``acmecse``) as a test peer: started headless on free loopback
ports with a generated ``acme.ini`` (in-memory database, HTTP binding, MQTT binding on the
test's Mosquitto), and a small HTTP client to act as a device on it.

``make test`` installs ACME into ``.acme-venv/`` (``scripts/ensure-acme``); without it the
tests that need it skip with that reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ACME", "Acme", "free_port", "needs_acme"]

ROOT = Path(__file__).resolve().parent.parent
ACME = Path(os.environ.get("ACME_VENV", ROOT / ".acme-venv")) / "bin" / "acmecse"
needs_acme = pytest.mark.skipif(
    not os.access(ACME, os.X_OK),
    reason=f"the ACME CSE is not installed at {ACME} (`make test` runs scripts/ensure-acme, "
           "which installs acmecse from PyPI into .acme-venv/)")

INI = """[basic.config]
cseType=IN
cseID={cse_id}
cseName={cse_name}
adminID=CAdmin
networkInterface=127.0.0.1
cseHost=127.0.0.1
httpPort={http_port}
databaseType=memory
logLevel={log_level}
consoleType=simple
[cse.security]
secret=hubctl-tests
[textui]
startWithTUI=false
[console]
headless=True
[webui]
enable=false
[scripting]
fileMonitoringInterval=0
[mqtt]
enable=true
address=127.0.0.1
port={mqtt_port}
"""


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Acme:
    """One ACME process with its own folder, ports and in-memory resource tree."""

    def __init__(self, folder: Path, mqtt_port: int, cse_id: str = "id-in",
                 cse_name: str = "cse-in", log_level: str = "warn") -> None:
        self.folder, self.cse_id, self.cse_name = folder, cse_id, cse_name
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "acme.ini").write_text(INI.format(
            cse_id=cse_id, cse_name=cse_name, http_port=self.http_port, mqtt_port=mqtt_port,
            log_level=log_level))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        """Start ACME and wait until its HTTP binding answers and its MQTT binding is up."""
        self.log = open(self.folder / "acme.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(ACME), "--config", "acme.ini", "--base-directory", str(self.folder),
             "--headless"], cwd=self.folder, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ACME exited: {(self.folder / 'acme.log').read_text()}")
            try:
                rsc, _ = self.request("GET", self.cse_name, "CAdmin", timeout=1)
                if rsc == 2000:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("ACME did not answer on HTTP")

    def stop(self) -> None:
        """Stop ACME (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
            self.log.close()

    def request(self, method: str, path: str, originator: str, body: Any = None,
                ty: int | None = None, query: str = "", timeout: float = 10
                ) -> tuple[int, dict[str, Any]]:
        """One request on ACME's HTTP binding: ``(rsc, content)``."""
        headers = {"X-M2M-Origin": originator, "X-M2M-RI": uuid.uuid4().hex,
                   "X-M2M-RVI": "3", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json" + (f";ty={ty}" if ty else "")
            data = json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/{path}{query}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.headers["X-M2M-RSC"]), json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return int(exc.headers["X-M2M-RSC"]), json.loads(exc.read() or b"{}")

    def device(self, ae: str, originator: str, containers: list[str], grant: str) -> None:
        """A device AE with containers that ``grant`` (the hub's AE-ID) may read and
        subscribe to, through an access control policy, as a CSE administrator sets it up."""
        assert self.request("POST", self.cse_name, originator, {"m2m:ae": {
            "rn": ae, "api": "Ndevice", "rr": False, "srv": ["3"]}}, 2)[0] == 2001
        assert self.request("POST", f"{self.cse_name}/{ae}", originator, {"m2m:acp": {
            "rn": "acpHub", "pv": {"acr": [{"acor": [originator, grant], "acop": 63}]},
            "pvs": {"acr": [{"acor": [originator], "acop": 63}]}}}, 1)[0] == 2001
        for cnt in containers:
            rsc, body = self.request("POST", f"{self.cse_name}/{ae}", originator, {"m2m:cnt": {
                "rn": cnt, "acpi": [f"{self.cse_name}/{ae}/acpHub"]}}, 3)
            assert rsc == 2001, body

    def create_cin(self, path: str, originator: str, con: Any) -> dict[str, Any]:
        """Create one contentInstance; its resource as ACME stored it."""
        rsc, body = self.request("POST", path, originator,
                                 {"m2m:cin": {"cnf": "application/json:0",
                                              "con": json.dumps(con)}}, 4)
        assert rsc == 2001, body
        return dict(body["m2m:cin"])

    def cni(self, path: str, originator: str) -> int:
        """The container's current number of instances."""
        rsc, body = self.request("GET", path, originator)
        assert rsc == 2000, body
        return int(body["m2m:cnt"]["cni"])
