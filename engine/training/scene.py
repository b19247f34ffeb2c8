"""One region of a normalised time series, the unit that training samples crops from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Scene:
    """Normalised arrays of one region (a whole small raster, or one block of a large one).

    ``x (T, C, H, W)`` float32, already normalised, invalid entries 0; ``valid (T, H, W)`` bool;
    ``positions (T,)`` float32 date encoding; ``labels (H, W)`` int64, 0 = unlabelled, 1..K = classes;
    ``field_ids (H, W)`` int32, 0 = no field.
    """

    x: np.ndarray
    valid: np.ndarray
    positions: np.ndarray
    labels: Optional[np.ndarray] = None
    field_ids: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.x = np.ascontiguousarray(self.x, dtype=np.float32)
        self.valid = np.ascontiguousarray(self.valid, dtype=bool)
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32)
        if self.x.ndim != 4:
            raise ValueError(f"Scene.x must be (T, C, H, W), got shape {self.x.shape}")
        t, _, h, w = self.x.shape
        if self.valid.shape != (t, h, w):
            raise ValueError(f"Scene.valid must be {(t, h, w)}, got {self.valid.shape}")
        if self.positions.shape != (t,):
            raise ValueError(f"Scene.positions must be ({t},), got {self.positions.shape}")
        if self.labels is not None:
            self.labels = np.ascontiguousarray(self.labels, dtype=np.int64)
            if self.labels.shape != (h, w):
                raise ValueError(f"Scene.labels must be {(h, w)}, got {self.labels.shape}")
        if self.field_ids is not None:
            self.field_ids = np.ascontiguousarray(self.field_ids, dtype=np.int32)
            if self.field_ids.shape != (h, w):
                raise ValueError(f"Scene.field_ids must be {(h, w)}, got {self.field_ids.shape}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, C, H, W)``."""
        return tuple(self.x.shape)  # type: ignore[return-value]

    @property
    def labelled_pixels(self) -> int:
        """Number of pixels with a class (label > 0)."""
        return 0 if self.labels is None else int(np.count_nonzero(self.labels > 0))
