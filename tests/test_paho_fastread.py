"""The fast MQTT packet reader leans on private parts of paho-mqtt: this test fails as soon as
the installed paho is not a version it was checked against, or lacks what it uses, so that a
paho upgrade is a deliberate change (pyproject.toml pins paho to the checked versions)."""

from __future__ import annotations

import inspect
from importlib.metadata import version

import paho.mqtt.client as mqtt

from hubctl.mqtt import fastread


def test_installed_paho_is_a_checked_version_with_the_internals_the_reader_uses() -> None:
    assert version("paho-mqtt") in fastread.CHECKED
    assert fastread.fast_reader_problem() is None
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    # the signatures the reader calls
    assert list(inspect.signature(client._sock_recv).parameters) == ["bufsize"]
    assert list(inspect.signature(client._packet_queue).parameters) == [
        "command", "packet", "mid", "qos", "info"]
    assert list(inspect.signature(client._packet_handle).parameters) == []
    assert list(inspect.signature(client.loop_read).parameters) == ["max_packets"]


def test_a_paho_without_those_internals_falls_back_to_stock_paho(monkeypatch: object) -> None:
    import paho.mqtt

    mp = monkeypatch  # pytest's MonkeyPatch
    mp.setattr(paho.mqtt, "__version__", "9.9.9")  # type: ignore[attr-defined]
    assert "9.9.9 is not one of the versions checked" in str(fastread.fast_reader_problem())
    mp.setattr(paho.mqtt, "__version__", fastread.CHECKED[0])  # type: ignore[attr-defined]
    mp.delattr(mqtt.Client, "_packet_handle")  # type: ignore[attr-defined]
    assert "lacks _packet_handle" in str(fastread.fast_reader_problem())

    from hubctl.lake import Lake
    from hubctl.mqtt.client import SourceListener
    from hubctl.mqtt.settings import parse_settings

    lines: list[str] = []
    import tempfile
    import threading
    from pathlib import Path

    s = parse_settings("x", {"protocol": "iotagent-json", "groups": {"k": {
        "type": "AirQualityObserved"}}}, Path("."))
    with tempfile.TemporaryDirectory() as tmp:
        li = SourceListener(Lake(Path(tmp)), s, lines.append, threading.Event())
    assert not li.fast and type(li.client) is mqtt.Client
    assert "using stock paho-mqtt" in lines[0]
