"""An MQTT source as declared in hub.toml: the broker, the session, the batching, and the
mapping from what devices publish to entity types and attributes.

    [sources.daegu-air.mqtt]
    host = "localhost"
    protocol = "onem2m"                 # or "iotagent-json"
    password_env = "DAEGU_MQTT_PASSWORD"

    # the hub as an application entity of a CSE (docs/live.md, "The hub as an AE"):
    register = true
    cse_id = "id-in"
    cse_name = "cse-in"
    ae_id = "Chubctl"
    cse_url = "http://127.0.0.1:8080"   # optional: CSE requests over HTTP instead of MQTT

    [sources.daegu-air.mqtt.containers."cse-in/daegu/air01"]
    type = "AirQualityObserved"
    id = "daegu-air01"
    attributes = { PM10 = "pm10", "PM2.5" = "pm25", NO2 = "no2" }
    units = { NO2 = "ppm" }
    static = { location = [128.5912, 35.8714] }

Everything is checked when the listener starts, so a typo fails at once with the key's path,
not message by message. Every key read here is also declared in ``MQTT`` in
:mod:`hubctl.config_schema` (hub.toml is checked against it when loaded; a test compares).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubctl.errors import ConfigError
from hubctl.registry import EntityType, get_type
from hubctl.units import conversion_factor, unit_code

__all__ = ["IOTAGENT_TOPICS", "MAX_WORKERS", "OLD_ONEM2M_TOPIC", "PROTOCOLS", "Mapping",
           "MqttSettings", "check_workers", "default_topics", "parse_settings"]

PROTOCOLS = ("onem2m", "iotagent-json")
IOTAGENT_TOPICS = ["/json/+/+/attrs", "/json/+/+/attrs/+", "/+/+/attrs", "/+/+/attrs/+"]
OLD_ONEM2M_TOPIC = "/oneM2M/req/+/+/json"  # the old default: it caught the CSE's requests too
DEFAULT_AE_ID = "hubctl"
DEFAULT_RECONCILE = 60.0
DEFAULT_BATCH_SIZE = 10_000
DEFAULT_BATCH_TIME = 1.0
MAX_WORKERS = 32


@dataclass(frozen=True)
class Mapping:
    """How one oneM2M container or one IoT-Agent config group becomes entity rows."""

    entity_type: EntityType
    entity_id: str | None  # fixed local id (a container); None: from the device id
    attributes: dict[str, str]  # published name -> attribute name
    factors: dict[str, float]  # published name -> factor to the attribute's canonical unit
    static: dict[str, Any]  # attribute -> value added to every row (a fixed sensor's location)
    time_keys: tuple[str, ...]  # published names that carry the observation time
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # per device: id, static

    def attribute(self, name: str) -> str | None:
        """The attribute a published name maps to: the mapping, else the same name if the
        entity type has it, else None (kept in ``_extra``)."""
        mapped = self.attributes.get(name)
        if mapped is not None:
            return mapped
        return name if name in self.entity_type.attributes else None


@dataclass(frozen=True)
class MqttSettings:
    """One MQTT source, checked."""

    source: str
    protocol: str
    host: str = "localhost"
    port: int = 1883
    version: str = "3.1.1"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    tls: dict[str, Any] | None = None
    topics: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_time: float = DEFAULT_BATCH_TIME
    keepalive: int = 60
    session_expiry: int = 7 * 24 * 3600
    response_qos: int = 1
    ae_id: str = DEFAULT_AE_ID  # the hub's AE-ID: receiver of its requests, originator of its own
    register: bool = False  # register the AE, create the subscriptions, catch up (hubctl.mqtt.ae)
    cse_id: str = ""  # the CSE's CSE-ID (``id-in``): receiver of the hub's requests over MQTT
    cse_name: str = ""  # the CSEBase's resource name (``cse-in``)
    cse_url: str | None = None  # the CSE's HTTP binding; else the hub asks over MQTT
    reconcile: float = DEFAULT_RECONCILE  # seconds between catch-ups (0: start/reconnect only)
    notify_http: str | None = None  # host:port of the HTTP notification receiver
    poa: tuple[str, ...] = ()  # the AE's points of access (default: from broker / notify_http)
    workers: int = 1  # listener processes sharing the subscription (hubctl.mqtt.workers)
    mappings: dict[str, Mapping] = field(default_factory=dict)  # container path or apikey


def _where(source: str, key: str = "") -> str:
    return f"[sources.{source}.mqtt{'.' + key if key else ''}]"


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _mapping(source: str, key: str, spec: Any, fixed_id: bool) -> Mapping:
    where = _where(source, key)
    spec = _table(spec, where)
    known = {"type", "id", "attributes", "units", "static", "time", "devices"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}",
                          hint=f"known keys: {', '.join(sorted(known))}")
    if "type" not in spec:
        raise ConfigError(f"{where} needs type = \"<EntityType>\"")
    try:
        et = get_type(str(spec["type"]))
    except Exception as exc:
        raise ConfigError(f"{where}: {exc}") from None
    attributes = {str(k): str(v) for k, v in _table(spec.get("attributes"), where).items()}
    for published, attr in attributes.items():
        if attr not in et.attributes:
            raise ConfigError(f"{where}: attributes.{published} = {attr!r} is not an attribute "
                              f"of {et.name}", hint=f"its attributes: {', '.join(et.attributes)}")
    factors = {}
    for published, unit in _table(spec.get("units"), where).items():
        attr = attributes.get(published, published)
        canonical = et.attributes[attr].unit if attr in et.attributes else None
        code = unit_code(str(unit))
        factor = conversion_factor(attr, code, canonical) if code and canonical else None
        if factor is None:
            raise ConfigError(f"{where}: units.{published} = {unit!r} cannot be converted to "
                              f"{attr}'s unit {canonical or '(none declared)'}")
        factors[published] = factor
    static = dict(_table(spec.get("static"), where))
    devices = {str(k): dict(_table(v, f"{where}.devices.{k}"))
               for k, v in _table(spec.get("devices"), where).items()}
    for name, value in [*static.items(), *((k, v) for d in devices.values()
                                           for k, v in d.get("static", {}).items())]:
        if name not in et.attributes:
            raise ConfigError(f"{where}: static attribute {name!r} is not an attribute of "
                              f"{et.name}")
        if et.attributes[name].is_point and not (isinstance(value, list) and len(value) in (2, 3)):
            raise ConfigError(f"{where}: static {name} must be [longitude, latitude]")
    time = spec.get("time", [])
    time_keys = tuple([time] if isinstance(time, str) else [str(t) for t in time])
    entity_id = spec.get("id")
    if fixed_id and not entity_id:
        raise ConfigError(f"{where} needs id = \"<local id>\" (the entity this container feeds)")
    return Mapping(et, str(entity_id) if entity_id else None, attributes, factors, static,
                   time_keys + ("TimeInstant",), devices)


def _password(source: str, mqtt: dict[str, Any]) -> str | None:
    if "password" in mqtt:
        raise ConfigError(f"{_where(source)}: a password must not be written in hub.toml",
                          hint="set password_env = \"NAME\" and export NAME=... instead")
    name = mqtt.get("password_env")
    if not name:
        return None
    value = os.environ.get(str(name))
    if value is None:
        raise ConfigError(f"{_where(source)}: password_env names {name}, which is not set",
                          hint=f"export {name}=... before `hubctl listen {source}`")
    return value


def check_workers(value: Any, where: str) -> int:
    """A worker count: an integer from 1 to MAX_WORKERS (ConfigError naming ``where``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ConfigError(f"{where} must be a whole number from 1 to {MAX_WORKERS}, "
                          f"not {value!r}")
    return value


def default_topics(protocol: str, ae_id: str) -> list[str]:
    """What a source subscribes to unless ``topics`` says otherwise: for oneM2M only what is
    addressed to the hub (requests and registration requests to its AE-ID, responses to its
    own requests), never the CSE's; for IoT-Agent JSON both topic forms."""
    if protocol == "onem2m":
        return [f"/oneM2M/req/+/{ae_id}/json", f"/oneM2M/resp/{ae_id}/+/json",
                f"/oneM2M/reg_req/+/{ae_id}/json", f"/oneM2M/reg_resp/{ae_id}/+/json"]
    return list(IOTAGENT_TOPICS)


def _ae(source: str, mqtt: dict[str, Any], host: str, port: int, tls: bool) -> dict[str, Any]:
    """The AE keys of a oneM2M source, checked."""
    where = _where(source)
    ae_id = str(mqtt.get("ae_id", DEFAULT_AE_ID))
    if "/" in ae_id or not ae_id.strip():
        raise ConfigError(f"{where}: ae_id must be an AE-ID without '/', not {ae_id!r}")
    register = mqtt.get("register", False)
    if not isinstance(register, bool):
        raise ConfigError(f"{where}: register must be true or false")
    out: dict[str, Any] = {"ae_id": ae_id, "register": register,
                           "cse_id": str(mqtt.get("cse_id", "")).strip("/"),
                           "cse_name": str(mqtt.get("cse_name", "")).strip("/")}
    if register:
        missing = [k for k in ("cse_id", "cse_name", "ae_id") if not mqtt.get(k)]
        if missing:
            raise ConfigError(f"{where}: register = true needs {', '.join(missing)}",
                              hint='e.g. cse_id = "id-in", cse_name = "cse-in", '
                                   'ae_id = "Chubctl" (docs/live.md, "The hub as an AE")')
    url = mqtt.get("cse_url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ConfigError(f"{where}: cse_url must be an http:// or https:// URL, not {url!r}")
    out["cse_url"] = str(url).rstrip("/") if url else None
    reconcile = mqtt.get("reconcile", DEFAULT_RECONCILE)
    if isinstance(reconcile, bool) or not isinstance(reconcile, int | float) or reconcile < 0:
        raise ConfigError(f"{where}: reconcile must be seconds >= 0 (0: catch up only at start "
                          f"and after a reconnect), not {reconcile!r}")
    out["reconcile"] = float(reconcile)
    notify = mqtt.get("notify_http")
    if notify is not None:
        host_part, _, port_part = str(notify).rpartition(":")
        if not host_part or not port_part.isdigit():
            raise ConfigError(f"{where}: notify_http must be \"host:port\", not {notify!r}")
    out["notify_http"] = str(notify) if notify is not None else None
    poa = mqtt.get("poa")
    if poa is None:
        poa = [f"http://{notify}"] if notify else \
            [f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"]
    elif isinstance(poa, str):
        poa = [poa]
    out["poa"] = tuple(str(p) for p in poa)
    return out


def parse_settings(source: str, mqtt: Any, base: Path) -> MqttSettings:
    """Check an ``[sources.NAME.mqtt]`` table and return its settings (ConfigError if wrong)."""
    mqtt = _table(mqtt, _where(source))
    protocol = mqtt.get("protocol")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"{_where(source)}: protocol must be one of {', '.join(PROTOCOLS)}, "
                          f"not {protocol!r}")
    version = str(mqtt.get("version", "3.1.1"))
    if version not in ("3.1.1", "5"):
        raise ConfigError(f"{_where(source)}: version must be \"3.1.1\" or \"5\"")
    group_key = "containers" if protocol == "onem2m" else "groups"
    groups = _table(mqtt.get(group_key), _where(source, group_key))
    if not groups:
        raise ConfigError(f"{_where(source)}: declare at least one [{group_key}.\"...\"] mapping")
    mappings = {(k.strip("/") if protocol == "onem2m" else k):
                _mapping(source, f"{group_key}.{k}", v, fixed_id=protocol == "onem2m")
                for k, v in groups.items()}
    tls = mqtt.get("tls")
    if tls is True:
        tls = {}
    elif tls is False:
        tls = None
    elif tls is not None:
        tls = {k: (str(base / v) if k in ("ca", "cert", "key") else v)
               for k, v in _table(tls, _where(source, "tls")).items()}
    host = str(mqtt.get("host", "localhost"))
    port = int(mqtt.get("port", 8883 if tls is not None else 1883))
    ae = _ae(source, mqtt, host, port, tls is not None) if protocol == "onem2m" else {}
    topics = mqtt.get("topics") or default_topics(str(protocol), ae.get("ae_id", ""))
    batch_size = int(mqtt.get("batch_size", DEFAULT_BATCH_SIZE))
    batch_time = float(mqtt.get("batch_time", DEFAULT_BATCH_TIME))
    if batch_size < 1 or not 0 < batch_time <= 3600:
        raise ConfigError(f"{_where(source)}: batch_size must be >= 1 and batch_time in (0, 3600]")
    if version == "5" and batch_size > 65535:
        raise ConfigError(f"{_where(source)}: batch_size is at most 65535 with MQTT 5 (the "
                          "Receive Maximum: messages the broker may send before they are acked)")
    workers = check_workers(mqtt.get("workers", 1), f"{_where(source)}: workers")
    if ae.get("register") and workers > 1:
        raise ConfigError(f"{_where(source)}: register = true works with one worker",
                          hint="remove workers (or --workers) for this source")
    return MqttSettings(
        source=source, protocol=str(protocol), host=host, port=port, version=version,
        client_id=str(mqtt.get("client_id") or f"hubctl-{source}"),
        username=mqtt.get("username"), password=_password(source, mqtt), tls=tls,
        topics=tuple(str(t) for t in topics), batch_size=batch_size, batch_time=batch_time,
        keepalive=int(mqtt.get("keepalive", 60)),
        session_expiry=int(mqtt.get("session_expiry", 7 * 24 * 3600)),
        response_qos=int(mqtt.get("response_qos", 1)), workers=workers, mappings=mappings,
        **ae)
