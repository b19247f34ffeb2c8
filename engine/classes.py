"""The class table: value, name and colour of each crop class, in a stable order."""

from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

Color = tuple[int, int, int]

_PALETTE_FILE = Path(__file__).resolve().parent.parent / "resources" / "crop_palette.json"


@dataclass(frozen=True)
class ClassInfo:
    """One class of the map: raster value (1..K), display name, RGB colour."""

    value: int
    name: str
    color: Color

    def to_dict(self) -> dict:
        return {"value": self.value, "name": self.name, "color": list(self.color)}

    @staticmethod
    def from_dict(data: dict) -> "ClassInfo":
        return ClassInfo(int(data["value"]), str(data["name"]), tuple(int(c) for c in data["color"]))  # type: ignore[arg-type]


class ClassTable(Sequence[ClassInfo]):
    """An ordered list of classes with values 1..K (0 is reserved for unlabelled / nodata)."""

    def __init__(self, classes: Iterable[ClassInfo]) -> None:
        self._classes = tuple(sorted(classes, key=lambda c: c.value))
        values = [c.value for c in self._classes]
        if values != list(range(1, len(values) + 1)):
            raise ValueError(f"class values must be 1..K, got {values}")

    @staticmethod
    def from_names(names: Iterable[str], colors: dict[str, Color] | None = None) -> "ClassTable":
        """Classes numbered 1..K in the given order, coloured from ``colors``, the crop palette, or a hash."""
        colors = colors or {}
        return ClassTable(
            ClassInfo(i, name, tuple(colors.get(name) or default_color(name)))  # type: ignore[arg-type]
            for i, name in enumerate(names, start=1)
        )

    def __getitem__(self, index):  # type: ignore[override]
        return self._classes[index]

    def __len__(self) -> int:
        return len(self._classes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassTable) and self._classes == other._classes

    def __repr__(self) -> str:
        return f"ClassTable({list(self._classes)!r})"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._classes]

    def by_name(self, name: str) -> ClassInfo | None:
        return next((c for c in self._classes if c.name == name), None)

    def to_list(self) -> list[dict]:
        return [c.to_dict() for c in self._classes]

    @staticmethod
    def from_list(items: Iterable[dict]) -> "ClassTable":
        return ClassTable(ClassInfo.from_dict(d) for d in items)


@lru_cache(maxsize=1)
def _palette() -> dict[str, Color]:
    try:
        data = json.loads(_PALETTE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key.lower(): tuple(value) for key, value in data.get("classes", {}).items()}  # type: ignore[misc]


def default_color(name: str) -> Color:
    """The palette colour for a common crop name (case-insensitive), else a distinct colour derived from the name."""
    found = _palette().get(name.strip().lower())
    if found:
        return found
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    hue = digest[0] / 255.0
    saturation = 0.55 + 0.35 * digest[1] / 255.0
    value = 0.65 + 0.3 * digest[2] / 255.0
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))
