"""``cropmapper:suggest`` through processing.run: the suggested_fields layer, loadable and styled by rank."""

from __future__ import annotations

import pytest
from qgis.core import QgsGraduatedSymbolRenderer, QgsVectorLayer

from cropmapper.ui import styling

pytestmark = pytest.mark.slow


def test_suggest_writes_a_ranked_layer(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing

    out = tmp_path / "suggested.gpkg"
    result = processing.run("cropmapper:suggest", {
        "SERIES": slovenia["images"], "CLOUD_MASKS": slovenia["masks"], "DEVICE": "cpu", "MODEL": trained["model"],
        "PARCELS": slovenia["polygons"], "COUNT": 5, "OUTPUT": str(out),
    })
    assert result["OUTPUT"] == f"{out}|layername=suggested_fields"
    layer = QgsVectorLayer(result["OUTPUT"], "suggested", "ogr")
    assert layer.isValid() and layer.featureCount() == 5
    assert sorted(f["rank"] for f in layer.getFeatures()) == [1, 2, 3, 4, 5]
    assert all(0.0 <= f["uncertainty"] <= 1.0 and f["area_ha"] > 0 for f in layer.getFeatures())
    assert styling.style_suggestions(layer)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer) and renderer.classAttribute() == "rank"
    ranges = renderer.ranges()  # held: a range's symbol dies with it
    first, last = ranges[0].symbol().color(), ranges[-1].symbol().color()
    assert first.lightness() < last.lightness()  # rank 1 is the darkest


def test_suggest_refuses_other_formats(provider, trained, slovenia, tmp_path):  # noqa: ARG001
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="GeoPackage"):
        processing.run("cropmapper:suggest", {
            "SERIES": slovenia["images"], "DEVICE": "cpu", "MODEL": trained["model"], "OUTPUT": str(tmp_path / "s.shp"),
        })
