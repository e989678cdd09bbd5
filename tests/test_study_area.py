"""Study areas: point in polygon (holes, several polygons), the buffered hull, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hubctl.errors import UsageError
from hubctl.pipelines.geo import (
    LocalProjection,
    in_polygons,
    read_polygons,
    study_area_mask,
)


def test_in_polygons_with_a_hole_and_a_second_polygon(tmp_path: Path) -> None:
    square = [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]
    hole = [[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]
    other = [[10, 10], [11, 10], [10.5, 11], [10, 10]]
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {
            "type": "MultiPolygon", "coordinates": [[square, hole], [other]]}}]}))
    polys = read_polygons(str(path))
    lon = np.array([0.5, 2.0, 3.5, 5.0, 10.5, 10.9, -1.0])
    lat = np.array([0.5, 2.0, 3.5, 2.0, 10.4, 10.9, 2.0])
    assert in_polygons(lon, lat, polys).tolist() == [True, False, True, False, True, False,
                                                     False]
    # against a brute-force even-odd count on a dense random sample
    rng = np.random.default_rng(3)
    px, py = rng.uniform(-1, 5, 2000), rng.uniform(-1, 5, 2000)
    expected = ((px > 0) & (px < 4) & (py > 0) & (py < 4)
                & ~((px > 1) & (px < 3) & (py > 1) & (py < 3)))
    assert (in_polygons(px, py, polys) == expected).all()


def test_hull_buffer_keeps_every_event_cell_and_drops_the_far_corner() -> None:
    ex = np.array([0.0, 1000.0, 0.0, 300.0])
    ey = np.array([0.0, 0.0, 1000.0, 300.0])
    proj = LocalProjection(0.0, 0.0)
    cx = np.array([125.0, 875.0, 875.0, 1100.0, -100.0])
    cy = np.array([125.0, 125.0, 875.0, 0.0, 500.0])
    mask = study_area_mask("hull", proj, cx, cy, ex, ey, 250.0)
    # inside, inside, the far corner of the bounding box, within one cell, within one cell
    assert mask.tolist() == [True, True, False, True, True]
    assert study_area_mask("bbox", proj, cx, cy, ex, ey, 250.0).all()


def test_bad_study_area_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        read_polygons(str(tmp_path / "missing.geojson"))
    (tmp_path / "pt.geojson").write_text(json.dumps({"type": "Point", "coordinates": [1, 2]}))
    with pytest.raises(UsageError, match="no Polygon"):
        read_polygons(str(tmp_path / "pt.geojson"))
    projected = [[500000, 4000000], [501000, 4000000], [501000, 4001000], [500000, 4000000]]
    (tmp_path / "utm.geojson").write_text(json.dumps({"type": "Polygon",
                                                      "coordinates": [projected]}))
    with pytest.raises(UsageError, match="not degrees"):
        read_polygons(str(tmp_path / "utm.geojson"))
