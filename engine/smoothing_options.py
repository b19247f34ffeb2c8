"""Settings of the Bayesian smoothing of class probabilities (``engine.inference.smoothing``), declared once.

Kept apart from the smoothing itself so that front ends read defaults, bounds and help without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .errors import EngineError


@dataclass
class SmoothingOptions:
    """Bayesian smoothing settings (defaults of sits' ``sits_smooth``)."""

    window: int = 9  # odd, pixels a side
    smoothness: float = 20.0  # prior variance granted to a pixel's own logit; larger = smoother
    neigh_fraction: float = 0.5  # share of the most probable neighbours that make the prior
    by_parcel: bool = False  # neighbourhoods stay inside each parcel of the parcel layer

    BOUNDS: ClassVar[dict] = {"window": (3, 31), "smoothness": (0.01, 1000.0), "neigh_fraction": (0.05, 1.0)}
    HELP: ClassVar[dict] = {
        "window": "size of the smoothing window in pixels, odd",
        "smoothness": "how strongly a pixel is pulled towards its neighbourhood (sits' smoothness)",
        "neigh_fraction": "share of the most probable neighbours that form the prior",
        "by_parcel": "smooth only within each parcel of the parcel (fields) layer, never across parcel borders",
    }

    @classmethod
    def describe(cls, name: str) -> str:
        """The help text of setting ``name`` with its bounds and default."""
        default = cls.__dataclass_fields__[name].default
        bounds = cls.BOUNDS.get(name)
        limits = f"{bounds[0]:g}..{bounds[1]:g}; " if bounds else ""
        return f"{cls.HELP[name]} ({limits}default {default})"

    def validate(self) -> "SmoothingOptions":
        """Raises ``EngineError`` naming the setting that is out of bounds; returns self."""
        low, high = self.BOUNDS["window"]
        if int(self.window) != self.window or not low <= self.window <= high or self.window % 2 == 0:
            raise EngineError(f"The smoothing window must be an odd number of pixels from {low} to {high} (got {self.window}).")
        for name in ("smoothness", "neigh_fraction"):
            low, high = self.BOUNDS[name]
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
                raise EngineError(f"The smoothing {name.replace('_', ' ')} must be from {low} to {high} (got {value}).")
        return self
