"""The JSON Schema (Draft 2020-12) of hub.toml: every table and key hubctl reads.

:func:`hubctl.config_check.check_config` validates a parsed hub.toml against :data:`SCHEMA` before
anything runs: an unknown key (``[lake] paht``) or a wrong type (``[lake] path = 42``) is a
configuration error (exit 2) naming the key's path and the closest valid key.
``hubctl config schema`` prints it, for editors that complete and check TOML with a JSON Schema.

To add a key, add it to the ``properties`` of the table it belongs to below (one dict per
table: ``LAKE``, ``SOURCE``, ``MQTT``, ``MAPPING``, ``PIPELINE``, ``EXPORT``, ``PRIVACY``,
``PUBLISHER``)
with its type and a ``description``; a whole new top-level table goes into ``SCHEMA``'s
``properties``. ``x-hint`` on a key is shown with its errors (what to write instead).
TOML dates and times are checked as ISO 8601 text (``"format"`` is not enforced).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA"]

_TEXT: dict[str, Any] = {"type": "string"}
_TEXTS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_TEXT_OR_TEXTS: dict[str, Any] = {"anyOf": [_TEXT, _TEXTS]}
_SCHEDULE: dict[str, Any] = {
    "type": "string", "description": "a cron expression in local time, e.g. \"*/10 * * * *\"",
    "x-hint": "write five cron fields as text, e.g. schedule = \"*/10 * * * *\""}
_BBOX: dict[str, Any] = {
    "type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
    "description": "[min_lon, min_lat, max_lon, max_lat] (WGS 84)"}


def _table(properties: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    """A TOML table with exactly these keys."""
    return {"type": "object", "description": description, "properties": properties,
            "additionalProperties": False, **extra}


def _named(item: dict[str, Any], description: str) -> dict[str, Any]:
    """A table of user-named tables (``[sources.NAME]``), each ``item``."""
    return {"type": "object", "description": description, "additionalProperties": item}


LAKE = _table({
    "path": {"type": "string", "description": "the lake folder, relative to hub.toml",
             "x-hint": "write the folder as text, e.g. path = \"lake\""},
}, "where the lake is")

MAPPING = _table({
    "type": {"type": "string", "description": "the entity type rows are written to"},
    "id": {"type": "string", "description": "the entity's local id (oneM2M containers)"},
    "attributes": {"type": "object", "additionalProperties": _TEXT,
                   "description": "published name -> attribute name"},
    "units": {"type": "object", "additionalProperties": _TEXT,
              "description": "published name -> the unit it is published in"},
    "static": {"type": "object", "description": "attribute -> value added to every row"},
    "time": {**_TEXT_OR_TEXTS, "description": "published names carrying the observation time"},
    "devices": {"type": "object", "description": "per device (IoT-Agent): its id and static",
                "additionalProperties": _table({"id": _TEXT, "static": {"type": "object"}},
                                               "one device of an IoT-Agent group")},
}, "how one oneM2M container or IoT-Agent group becomes entity rows", required=["type"])

MQTT = _table({
    "protocol": {"enum": ["onem2m", "iotagent-json"], "description": "what devices publish"},
    "host": _TEXT,
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "version": {"enum": ["3.1.1", "5", 5], "description": "the MQTT protocol version"},
    "client_id": _TEXT,
    "username": _TEXT,
    "password": {"not": {}, "description": "never in hub.toml",
                 "x-hint": "set password_env = \"NAME\" and export NAME=... instead"},
    "password_env": {"type": "string", "description": "environment variable with the password"},
    "tls": {"anyOf": [{"type": "boolean"}, _table({
        "ca": _TEXT, "cert": _TEXT, "key": _TEXT, "insecure": {"type": "boolean"}},
        "TLS files, relative to hub.toml")]},
    "topics": _TEXTS,
    "batch_size": {"type": "integer", "minimum": 1},
    "batch_time": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    "keepalive": {"type": "integer", "minimum": 1},
    "session_expiry": {"type": "integer", "minimum": 0},
    "response_qos": {"type": "integer", "minimum": 0, "maximum": 2},
    "workers": {"type": "integer", "minimum": 1, "maximum": 32},
    "containers": _named(MAPPING, "oneM2M: container path -> mapping"),
    "groups": _named(MAPPING, "IoT-Agent JSON: apikey -> mapping"),
    # oneM2M: the hub as an application entity (issue 14)
    "cse_id": {"type": "string", "description": "the CSE's id, e.g. \"id-in\""},
    "cse_name": {"type": "string", "description": "the CSE's name, e.g. \"cse-in\""},
    "ae_id": {"type": "string", "description": "the hub's AE-ID and originator"},
    "cse_url": {"type": "string", "description": "the CSE's HTTP binding"},
    "register": {"type": "boolean", "description": "register the AE and its subscriptions"},
    "reconcile": {"type": "number", "minimum": 0,
                  "description": "seconds between catch-up reads of the CSE (0: only at start "
                                 "and after a reconnect)"},
    "notify_http": {"type": "string", "pattern": "^[^:]*:[0-9]+$",
                    "description": "host:port of the HTTP notification receiver"},
    "poa": {**_TEXT_OR_TEXTS, "description": "the AE's points of access (default: the broker, "
                                             "or http://<notify_http>)"},
}, "a live MQTT source for `hubctl listen`")

SOURCE = _table({
    "adapter": {"type": "string", "description": "a subcommand of `hubctl ingest`"},
    "inputs": {**_TEXT_OR_TEXTS, "description": "files or globs, relative to hub.toml"},
    "options": {"type": "object", "description": "the adapter's options, without dashes"},
    "schedule": _SCHEDULE,
    "mqtt": MQTT,
}, "a source: `hubctl ingest --source NAME`, or `hubctl listen NAME` with an mqtt table",
    **{"if": {"not": {"required": ["mqtt"]}}, "then": {"required": ["adapter"]}})

PIPELINE = _table({
    "schedule": _SCHEDULE,
    "after": {**_TEXTS, "minItems": 1,
              "description": "sources whose successful runs start this pipeline"},
    "params": {"type": "object", "description": "the pipeline's parameters (--param)",
               "additionalProperties": {"type": ["string", "number", "boolean", "array"]}},
}, "a pipeline run by `hubctl schedule` (`hubctl run NAME`)")

PUBLISHER = _table({
    "name": _TEXT, "url": _TEXT, "email": _TEXT,
    "licence": {"type": "string", "description": "an SPDX identifier or a licence URL"},
}, "who publishes the open data (DCAT-AP publisher and default licence)")

PRIVACY = _table({
    "k": {"type": "integer", "minimum": 1, "description": "smallest published cell count"},
    "cell_m": {"type": "number", "exclusiveMinimum": 0, "description": "grid cell size"},
    "bucket": {"type": "string", "description": "time bucket of aggregates"},
    "min_customers": {"type": "integer", "minimum": 1, "description": "15/15 rule: customers"},
    "max_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                  "description": "15/15 rule: largest share of one customer"},
}, "an entity type's publication rule, tightened (never loosened) from its schema's")

EXPORT = _table({
    "tables": {**_TEXTS, "description": "entity types and derived tables"},
    "to": {"type": "string", "description": "the folder bundles are written to"},
    "formats": {**_TEXTS, "description": "data formats to write (default: all)"},
    "since": {"type": "string", "description": "event time from (ISO 8601 or a TOML date)"},
    "until": {"type": "string", "description": "event time until (ISO 8601 or a TOML date)"},
    "bbox": {"anyOf": [_TEXT, _BBOX], "description": "W,S,E,N filter (WGS 84)"},
    "where": {"type": "string", "description": "SQL on the tables' columns"},
    "licence": {"type": "string", "description": "an SPDX identifier or a licence URL"},
    "title": _TEXT, "description": _TEXT, "keywords": _TEXTS, "themes": _TEXTS,
    "spatial": {"anyOf": [_TEXT, _BBOX], "description": "spatial coverage W,S,E,N"},
    "temporal": {**_TEXTS, "minItems": 2, "maxItems": 2,
                 "description": "temporal coverage [start, end] (ISO 8601 or TOML dates)"},
    "frequency": {"type": "string", "description": "update frequency (DCAT, e.g. DAILY)"},
    "contact": {"type": "string", "description": "the contact point's e-mail"},
    "privacy": _named(PRIVACY, "entity type -> its publication rule, tightened"),
    "shapes": {"type": "string", "description": "folder with the DCAT-AP 3.0.0 SHACL shapes "
                                                 "to check dcat.ttl against"},
    "base_url": {"type": "string", "description": "where the bundle will be published"},
    "publisher": {"$ref": "#/$defs/publisher"},
    "schedule": _SCHEDULE,
}, "an open-data bundle: `hubctl export NAME`")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://hubctl.invalid/hub-config.schema.json",
    "title": "hub.toml",
    "description": "hubctl's configuration: the lake, sources, pipelines and exports",
    **_table({
        "lake": LAKE,
        "sources": _named(SOURCE, "sources by name"),
        "pipelines": _named(PIPELINE, "scheduled pipelines by name (`hubctl pipelines`)"),
        "exports": _named(EXPORT, "open-data bundles by name"),
        "publisher": {"$ref": "#/$defs/publisher"},
    }, "hubctl's configuration"),
    "$defs": {"publisher": PUBLISHER},
}
