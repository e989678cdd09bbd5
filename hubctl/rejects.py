"""The reject catalogue: stable codes, message templates, and one rejected record.

Like frictionless' error catalogue, each problem has a code users can filter on in
``_rejects``, a field or JSON path, and a message built from a template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CODES", "Reason", "Reject", "reason"]

CODES: dict[str, str] = {
    "type-error": "{field}: {value!r} is not a {expected}",
    "missing-required": "{field} is required but missing",
    "below-minimum": "{field}: {value} is below the minimum {limit}",
    "above-maximum": "{field}: {value} is above the maximum {limit}",
    "enum-error": "{field}: {value!r} is not one of {allowed}",
    "pattern-error": "{field}: {value!r} does not match {pattern}",
    "coordinates-out-of-range": "{field}: ({lon}, {lat}) is not a WGS84 lon/lat position",
    "swapped-coordinates": "{field}: ({lon}, {lat}) looks like latitude and longitude swapped",
    "unknown-unit": "{field}: unit {unit!r} is not known or cannot convert to {canonical}",
    "unknown-parameter": "parameter {value!r} is not an attribute of {type}",
    "unknown-type": "entity type {value!r} has no schema in schemas/",
    "bad-timestamp": "{field}: {value!r} is not a date and time",
    "malformed-record": "{detail}",
    "bad-encoding": "{detail}",
    "line-too-long": "{detail}",
    "bad-id": "{field}: {detail}",
    "constraint-error": "{field}: {detail}",
    "unknown-station": "station {value!r} has no coordinates in the stations file",
    "unknown-reference": "{field}: {value!r} refers to no {type} in {where}",
    "duplicate-key": "{field}: {value!r} appears again ({detail})",
    "end-before-start": "{field}: {value} is before the start {start}",
    "negative-value": "{field}: {value} is negative",
    "unmapped-message": "{detail}",
}


@dataclass(frozen=True)
class Reason:
    """One reason a record was rejected."""

    code: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form, as stored in ``_rejects.reasons``."""
        return {"code": self.code, "field": self.field, "message": self.message}


def reason(code: str, field: str = "", **values: Any) -> Reason:
    """Build a :class:`Reason` from the catalogue template of ``code``."""
    template = CODES[code]
    try:
        message = template.format(field=field, **values)
    except (KeyError, IndexError):
        message = f"{field}: {code}"
    return Reason(code, field, message)


@dataclass
class Reject:
    """A record that did not enter the lake, with every reason and its raw form."""

    entity_type: str
    raw: str
    reasons: list[Reason]
    file: str = ""
    record: str = ""  # line number, JSON pointer or message id in the input
    records: int = 1  # input records this reject stands for
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def codes(self) -> str:
        """Distinct codes, comma-separated, in order of first appearance."""
        return ",".join(dict.fromkeys(r.code for r in self.reasons))

    def reasons_json(self) -> str:
        """Reasons as JSON text."""
        return json.dumps([r.as_dict() for r in self.reasons], ensure_ascii=False)
