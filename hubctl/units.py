"""Units: published unit spellings to UN/CEFACT codes, and conversion to a canonical unit.

Gas mixing ratios (ppm, ppb) convert to mass concentrations at 25 °C and 1 atm, where one mole
of gas fills 24.45 litres: µg/m³ = ppb × M / 24.45 (M in g/mol). This is the convention of the
EU (Directive 2008/50/EC) and of US EPA reporting; sources that use 20 °C differ by about 2 %.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MOLAR_MASS", "UNIT_CODES", "conversion_factor", "unit_code"]

MOLAR_VOLUME_L = 24.45
MOLAR_MASS = {"no2": 46.0055, "o3": 47.9982, "so2": 64.066, "co": 28.010, "no": 30.006,
              "nox": 46.0055}

# UN/CEFACT Recommendation 20 codes (as NGSI-LD unitCode) for the spellings sources publish.
UNIT_CODES: dict[str, str] = {
    "µg/m³": "GQ", "ug/m3": "GQ", "µg/m3": "GQ", "ug/m³": "GQ", "microgram/m3": "GQ", "GQ": "GQ",
    "mg/m³": "GP", "mg/m3": "GP", "GP": "GP",
    "ppm": "59", "59": "59",
    "ppb": "61", "61": "61",
    "°c": "CEL", "c": "CEL", "cel": "CEL", "CEL": "CEL",
    "m/s": "MTS", "MTS": "MTS",
    "°": "DD", "deg": "DD", "DD": "DD",
    "%": "P1", "P1": "P1",
    "km/h": "KMH", "kmh": "KMH", "kph": "KMH", "KMH": "KMH",
    "m": "MTR", "MTR": "MTR", "km": "KMT", "KMT": "KMT",
    "wh": "WHR", "WHR": "WHR", "w·h": "WHR", "whr": "WHR",
    "kwh": "KWH", "KWH": "KWH", "kw·h": "KWH", "kw.h": "KWH", "kwhr": "KWH", "kwhrs": "KWH",
    "mwh": "MWH", "MWH": "MWH", "gwh": "GWH", "GWH": "GWH",
    "kj": "KJO", "KJO": "KJO", "mj": "3B", "3B": "3B", "gj": "GV", "GV": "GV",
    "s": "SEC", "sec": "SEC", "SEC": "SEC", "min": "MIN", "MIN": "MIN", "h": "HUR", "HUR": "HUR",
}

# Units that differ by a constant factor, by dimension: factor to the dimension's first unit.
_LINEAR: tuple[dict[str, float], ...] = (
    {"KMH": 1.0, "MTS": 3.6},                       # speed, km/h
    {"MTR": 1.0, "KMT": 1000.0},                    # length, m
    {"WHR": 1.0, "KWH": 1000.0, "MWH": 1e6, "GWH": 1e9,  # energy, Wh
     "KJO": 1 / 3.6, "3B": 1000 / 3.6, "GV": 1e6 / 3.6},
    {"SEC": 1.0, "MIN": 60.0, "HUR": 3600.0},       # duration, s
)

# Factor from a unit to the reference unit of its dimension (GQ for concentrations).
_MASS_TO_GQ = {"GQ": 1.0, "GP": 1000.0}
_RATIO_TO_PPB = {"61": 1.0, "59": 1000.0}


def unit_code(text: str | None) -> str | None:
    """The UN/CEFACT code for a published unit spelling, or None if unknown.

    Accepts the micro sign (U+00B5) and the Greek mu (U+03BC), any case, with spaces.
    """
    if text is None:
        return None
    raw = unicodedata.normalize("NFKC", text.strip())  # NFKC maps U+00B5 to U+03BC
    if raw in UNIT_CODES:
        return UNIT_CODES[raw]
    folded = raw.replace("μ", "µ").replace(" ", "")
    return UNIT_CODES.get(folded) or UNIT_CODES.get(folded.lower())


def conversion_factor(parameter: str, from_code: str, to_code: str) -> float | None:
    """Multiply a value in ``from_code`` by this to get ``to_code``; None if not convertible."""
    if from_code == to_code:
        return 1.0
    if from_code in _MASS_TO_GQ and to_code in _MASS_TO_GQ:
        return _MASS_TO_GQ[from_code] / _MASS_TO_GQ[to_code]
    for dimension in _LINEAR:
        if from_code in dimension and to_code in dimension:
            return dimension[from_code] / dimension[to_code]
    mass = MOLAR_MASS.get(parameter)
    if mass is None:
        return None
    if from_code in _RATIO_TO_PPB and to_code in _MASS_TO_GQ:
        gq = _RATIO_TO_PPB[from_code] * mass / MOLAR_VOLUME_L
        return gq / _MASS_TO_GQ[to_code]
    if from_code in _MASS_TO_GQ and to_code in _RATIO_TO_PPB:
        ppb = _MASS_TO_GQ[from_code] * MOLAR_VOLUME_L / mass
        return ppb / _RATIO_TO_PPB[to_code]
    if from_code in _RATIO_TO_PPB and to_code in _RATIO_TO_PPB:
        return _RATIO_TO_PPB[from_code] / _RATIO_TO_PPB[to_code]
    return None
