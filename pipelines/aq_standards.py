"""The published breakpoint tables the ``air_quality`` pipeline uses, as data, and the SQL of
the CAI grade (the indices themselves are computed with numpy in :mod:`pipelines.aq_indices`).

Sources (docs/air-quality.md quotes them in full):

- Korea CAI (통합대기환경지수): AirKorea, "통합대기환경지수 (CAI)" and its CAI calculator
  (www.airkorea.or.kr/web/caiCalculator), PM2.5 breakpoints as revised on 2018-03-27.
- US AQI: EPA, Technical Assistance Document for the Reporting of Daily Air Quality - the Air
  Quality Index (AQI), EPA-454/B-24-002, May 2024, Table 6 (the 2024 PM2.5 breakpoints).
- European AQI: EEA, European Air Quality Index as revised in 2023/2024 (ETC HE Report 2024/17,
  Table 5.2): six bands, upper bounds in µg/m³.
- WHO global air quality guidelines 2021, Table 0.1: guideline levels and interim targets.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CAI", "CAI_BONUS", "CAI_GRADES", "CAI_GRADE_NAMES", "EAQI", "EAQI_BANDS",
           "POLLUTANTS", "US_AQI", "US_CATEGORIES", "WHO_2021", "grade_sql"]

POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co", "so2")

# (concentration low, concentration high, index low, index high) per band.
Band = tuple[float, float, float, float]

CAI_GRADES = ((0, 50), (51, 100), (101, 250), (251, 500))
CAI_GRADE_NAMES = ("good", "moderate", "unhealthy", "veryUnhealthy")
CAI_GRADE_KO = ("좋음", "보통", "나쁨", "매우나쁨")
CAI_COLOURS = ("#1c87ff", "#00c73c", "#ffa800", "#ff3b30")  # the blue/green/yellow/red lights


def _bands(conc: Sequence[float], index: Sequence[tuple[float, float]]) -> tuple[Band, ...]:
    pairs = [(conc[i], conc[i + 1]) for i in range(0, len(conc), 2)]
    return tuple((lo, hi, ilo, ihi) for (lo, hi), (ilo, ihi) in zip(pairs, index, strict=True))


# CAI: SO2, NO2, O3 and CO are 1-hour values in ppm; PM10 and PM2.5 24-hour values in µg/m³.
CAI: dict[str, tuple[Band, ...]] = {
    "so2": _bands((0, 0.020, 0.021, 0.050, 0.051, 0.150, 0.151, 1.0), CAI_GRADES),
    "co": _bands((0, 2.0, 2.01, 9.0, 9.01, 15.0, 15.01, 50.0), CAI_GRADES),
    "o3": _bands((0, 0.030, 0.031, 0.090, 0.091, 0.150, 0.151, 0.600), CAI_GRADES),
    "no2": _bands((0, 0.030, 0.031, 0.060, 0.061, 0.200, 0.201, 2.0), CAI_GRADES),
    "pm10": _bands((0, 30, 31, 80, 81, 150, 151, 600), CAI_GRADES),
    "pm25": _bands((0, 15, 16, 35, 36, 75, 76, 500), CAI_GRADES),
}
# AirKorea's rule for several pollutants in the unhealthy range: when two sub-indices are
# 'unhealthy' (나쁨) or worse the CAI is the highest plus 50; three or more, plus 75.
CAI_BONUS = ((3, 75), (2, 50))

US_CATEGORIES = ("Good", "Moderate", "Unhealthy for Sensitive Groups", "Unhealthy",
                 "Very Unhealthy", "Hazardous")
_US_I = ((0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500))

# US AQI, TAD 2024 Table 6. Units: PM µg/m³ (PM2.5 truncated to 0.1, PM10 to 1), O3 ppm
# (truncated to 0.001), CO ppm (0.1), SO2 and NO2 ppb (1).
US_AQI: dict[str, tuple[Band, ...]] = {
    "pm25": _bands((0.0, 9.0, 9.1, 35.4, 35.5, 55.4, 55.5, 125.4, 125.5, 225.4, 225.5, 325.4),
                   _US_I),
    "pm10": _bands((0, 54, 55, 154, 155, 254, 255, 354, 355, 424, 425, 604), _US_I),
    "o3_8h": _bands((0.000, 0.054, 0.055, 0.070, 0.071, 0.085, 0.086, 0.105, 0.106, 0.200),
                    _US_I[:5]),
    "o3_1h": _bands((0.125, 0.164, 0.165, 0.204, 0.205, 0.404, 0.405, 0.604), _US_I[2:]),
    "co": _bands((0.0, 4.4, 4.5, 9.4, 9.5, 12.4, 12.5, 15.4, 15.5, 30.4, 30.5, 50.4), _US_I),
    "so2_1h": _bands((0, 35, 36, 75, 76, 185, 186, 304), _US_I[:4]),
    "so2_24h": _bands((305, 604, 605, 1004), _US_I[4:]),
    "no2": _bands((0, 53, 54, 100, 101, 360, 361, 649, 650, 1249, 1250, 2049), _US_I),
}

# European AQI (2023 revision): upper bounds of bands 1-5 in µg/m³; band 6 is above the last.
# PM10 and PM2.5 as 24-hour running means, NO2, O3 and SO2 as hourly means.
EAQI: dict[str, tuple[float, ...]] = {
    "pm25": (5, 15, 50, 90, 140),
    "pm10": (15, 45, 120, 195, 270),
    "no2": (10, 25, 60, 100, 150),
    "o3": (60, 100, 120, 160, 180),
    "so2": (20, 40, 125, 190, 275),
}
EAQI_BANDS = ("good", "fair", "moderate", "poor", "veryPoor", "extremelyPoor")

# WHO 2021: pollutant -> averaging -> ((level, threshold), ...), strictest last; µg/m³
# except CO in mg/m³. 8h is the maximum daily 8-hour mean.
WHO_2021: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {
    "pm25": {"annual": (("IT1", 35), ("IT2", 25), ("IT3", 15), ("IT4", 10), ("AQG", 5)),
             "24h": (("IT1", 75), ("IT2", 50), ("IT3", 37.5), ("IT4", 25), ("AQG", 15))},
    "pm10": {"annual": (("IT1", 70), ("IT2", 50), ("IT3", 30), ("IT4", 20), ("AQG", 15)),
             "24h": (("IT1", 150), ("IT2", 100), ("IT3", 75), ("IT4", 50), ("AQG", 45))},
    "o3": {"8h": (("IT1", 160), ("IT2", 120), ("AQG", 100))},
    "no2": {"annual": (("IT1", 40), ("IT2", 30), ("IT3", 20), ("AQG", 10)),
            "24h": (("IT1", 120), ("IT2", 50), ("AQG", 25))},
    "so2": {"24h": (("IT1", 125), ("IT2", 50), ("AQG", 40))},
    "co": {"24h": (("IT1", 7), ("AQG", 4))},
}


def grade_sql(index: str) -> str:
    """SQL for the CAI grade (1-4) of a rounded CAI value."""
    parts = [f"WHEN ({index}) IS NULL THEN NULL"]
    parts += [f"WHEN ({index}) <= {hi} THEN {g}" for g, (_, hi) in enumerate(CAI_GRADES[:3], 1)]
    return "CASE " + " ".join(parts) + " ELSE 4 END"
