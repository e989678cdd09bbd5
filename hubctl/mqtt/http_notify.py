"""oneM2M notifications over HTTP (TS-0009): the receiver at the hub AE's ``http://`` point of
access (``notify_http = "host:port"`` in ``[sources.NAME.mqtt]``).

A CSE POSTs each notification (``X-M2M-Origin``, ``X-M2M-RI``, ``X-M2M-RVI`` headers, the
``m2m:sgn`` or ``m2m:agn`` as the body). The receiver turns it into the same request primitive
the MQTT binding carries, queues it for the listener's next micro-batch and holds the HTTP
exchange open: the answer (``X-M2M-RSC`` 2000, or the error with ``m2m:dbg``) is sent only
after the micro-batch is committed, as on MQTT. If no answer comes within ``timeout`` seconds
(the commit failed, the listener is stopping), it answers 500 and the CSE's catch-up path
(:mod:`hubctl.mqtt.ae`) still brings the data.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HTTP_STATUS", "NotifyServer", "Reply"]

HTTP_STATUS = {2000: 200, 2001: 201, 4000: 400, 4004: 404, 4005: 405, 5001: 501, 5000: 500}


class Reply:
    """The answer to one HTTP request, set by the listener after its commit."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.rsc = 5000
        self.body: dict[str, Any] = {}

    def send(self, rsc: int, body: dict[str, Any]) -> None:
        """Answer with oneM2M status ``rsc`` and JSON ``body`` (the handler writes it)."""
        self.rsc, self.body = rsc, body
        self.done.set()


class NotifyServer:
    """A threaded HTTP server whose POSTs become listener messages; ``deliver(topic, payload,
    reply)`` queues one."""

    def __init__(self, address: str, deliver: Callable[[str, bytes, Reply], None],
                 log: Callable[[str], None], timeout: float = 30.0) -> None:
        host, _, port = address.rpartition(":")
        self.address, self.log, self.timeout = address, log, timeout
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the listener logs what matters

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rqi, rvi = self.headers.get("X-M2M-RI"), self.headers.get("X-M2M-RVI")
                try:
                    pc = json.loads(body) if body else None
                except ValueError:
                    pc = body.decode("utf-8", "replace")
                primitive = {"op": 5, "fr": self.headers.get("X-M2M-Origin"), "rqi": rqi,
                             "rvi": rvi, "to": self.path, "pc": pc}
                if isinstance(pc, str):  # not JSON: the parser says so
                    payload = body
                else:
                    payload = json.dumps({k: v for k, v in primitive.items()
                                          if v is not None}).encode()
                reply = Reply()
                server.deliver(f"http://{server.address}{self.path}", payload, reply)
                if not reply.done.wait(server.timeout):
                    reply.rsc, reply.body = 5000, {"m2m:dbg": "not committed in time; the "
                                                   "hub catches up from the CSE"}
                out = json.dumps(reply.body).encode() if reply.body else b""
                self.send_response(HTTP_STATUS.get(reply.rsc, 500 if reply.rsc >= 5000
                                                   else 400 if reply.rsc >= 4000 else 200))
                self.send_header("X-M2M-RSC", str(reply.rsc))
                if rqi is not None:
                    self.send_header("X-M2M-RI", rqi)
                self.send_header("X-M2M-RVI", rvi or "3")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.deliver = deliver
        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name=f"http-notify-{address}")

    def start(self) -> None:
        """Serve in a background thread."""
        self.thread.start()
        self.log(f"receiving oneM2M notifications over HTTP on http://{self.address}")

    def stop(self) -> None:
        """Stop serving (requests in progress get their answer or their timeout)."""
        self.httpd.shutdown()
        self.httpd.server_close()

