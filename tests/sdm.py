"""The official Smart Data Models JSON Schemas in ../shared/data/ngsi-ld/sdm-schemas, validated
offline: every $ref (the shared common-schema.json, gtfs-schema.json, ...) resolves through a
local ``referencing.Registry``, never over the network."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.conftest import SAMPLE_DATA

SDM = SAMPLE_DATA / "ngsi-ld" / "sdm-schemas"


@cache
def sdm_validator(type_name: str) -> Draft202012Validator:
    """A validator of ``type_name``'s official SDM schema, its references resolved locally."""
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    files = sorted(SDM.glob("*.json"))
    texts = {p.name: p.read_text(encoding="utf-8") for p in files}
    by_name = {name: DRAFT202012.create_resource(json.loads(t)) for name, t in texts.items()}
    refs = set(re.findall(r'"\$ref": "([^"#]+)', "".join(texts.values())))
    registry = Registry().with_resources(
        [(u, by_name[u.rsplit("/", 1)[1]]) for u in refs if u.rsplit("/", 1)[1] in by_name]
        + [(d["$id"], DRAFT202012.create_resource(d))
           for d in map(json.loads, texts.values()) if "$id" in d])
    schema = json.loads(texts[f"{type_name}.schema.json"])
    return Draft202012Validator(schema, registry=registry)


def sdm_errors(type_name: str, entity: dict[str, Any]) -> list[str]:
    """What the official schema finds wrong in a key-values entity ("path: message")."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in sdm_validator(type_name).iter_errors(entity)]
