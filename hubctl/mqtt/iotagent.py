"""The FIWARE IoT-Agent JSON binding over MQTT.

Devices publish measures on ``/json/<apikey>/<deviceId>/attrs`` (a JSON object of measures,
or an array of such objects) or one measure on ``/json/<apikey>/<deviceId>/attrs/<name>``; the
older topics without the ``/json`` prefix (``/<apikey>/<deviceId>/attrs[/<name>]``), still
common in deployments, are read the same way.
The apikey selects a config group (``[sources.NAME.mqtt.groups.<apikey>]``): the entity type,
how measure names map to attributes, their units, and static attributes; the device id is the
entity's local id unless the group's ``devices.<id>.id`` says otherwise. ``TimeInstant`` (or a
measure named in the group's ``time``) dates the observation; without it, the arrival time does.
"""

from __future__ import annotations

import json
from typing import Any

from hubctl.mqtt.observe import Message, Observation, unmapped
from hubctl.mqtt.settings import Mapping
from hubctl.rejects import Reject

__all__ = ["parse"]


def _observation(message: Message, mapping: Mapping, device: str, measures: dict[str, Any],
                 raw: str | None) -> Observation:
    device_cfg = mapping.devices.get(device, {})
    values = dict(measures)
    time, time_key = None, "arrival"
    for key in mapping.time_keys:
        if key in values:
            time, time_key = values.pop(key), key
            break
    return Observation(message, mapping, str(device_cfg.get("id", device)), values, time,
                       time_key, raw, dict(device_cfg.get("static", {})))


def parse(message: Message, groups: dict[str, Mapping]) -> list[Observation] | Reject:
    """The observations of one message, or a reject that says why there are none."""
    parts = message.topic.strip("/").split("/")
    if parts[0] == "json" and len(parts) in (4, 5) and parts[3] == "attrs":
        parts = parts[1:]  # /json/<apikey>/<deviceId>/attrs[/<attribute>]
    if len(parts) not in (3, 4) or parts[2] != "attrs":
        return unmapped(message, f"topic {message.topic!r} is not /json/<apikey>/<deviceId>/"
                                 "attrs[/<attribute>] or /<apikey>/<deviceId>/attrs[/...]")
    apikey, device = parts[0], parts[1]
    mapping = groups.get(apikey)
    if mapping is None:
        return unmapped(message, f"apikey {apikey!r} has no config group in hub.toml")
    et = mapping.entity_type.name
    if len(parts) == 4:  # one measure; its payload is the value (JSON, else text)
        try:
            value = json.loads(message.payload)
        except ValueError:
            value = message.text().strip()
        return [_observation(message, mapping, device, {parts[3]: value}, None)]
    try:
        doc = json.loads(message.payload)
    except json.JSONDecodeError as exc:
        return unmapped(message, f"payload is not JSON ({exc.msg} at column {exc.colno})", et)
    except ValueError:
        return unmapped(message, "payload is not UTF-8 text", et)
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(isinstance(i, dict) for i in items):
        return unmapped(message, "payload must be a JSON object of measures or an array of "
                                 "objects", et)
    single = len(items) == 1
    return [_observation(message, mapping, device, item, None if single else
                         json.dumps(item, ensure_ascii=False)) for item in items]
