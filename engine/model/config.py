"""STCLN architecture settings and the ``paper`` / ``lite`` presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

DATE_ENCODINGS = ("date", "index")

# paper: exactly DESIGN.md (spatial C->32->256, 3 post-norm layers d=256/8 heads/FF 1024, STA over the window).
# lite: spatial C->16->64, 2 layers d=64/4 heads/FF 128, STA queries/keys of 16 channels per date; about 0.1 M
# parameters for 10 bands / 20 classes, chosen to run at >= 10,000 px/s on a 2-core AVX-512 CPU (T=24, window 32).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(spatial_channels=(32, 256), d_model=256, n_heads=8, n_layers=3, d_ff=1024, sta_channels=256),
    "lite": dict(spatial_channels=(16, 64), d_model=64, n_heads=4, n_layers=2, d_ff=128, sta_channels=16),
}


@dataclass
class STCLNConfig:
    """Every size of one STCLN network; stored in the model file as a plain dict.

    ``spatial_channels[-1]`` must equal ``d_model`` (the temporal encoder reads the spatial features directly).
    ``sta_channels`` is the per-date width of STA's queries and keys (the affinity is scaled by
    ``1/sqrt(sta_channels)``); ``use_sta=False`` drops the STA module (ablation: temporal features max-pooled
    over valid dates go straight to the head). ``date_encoding`` is ``date`` (days since the season start) or
    ``index`` (acquisition index, as the authors' code).
    """

    in_channels: int
    num_classes: int
    preset: str = "paper"
    spatial_channels: tuple[int, ...] = (32, 256)
    d_model: int = 256
    n_heads: int = 8
    n_layers: int = 3
    d_ff: int = 1024
    dropout: float = 0.1
    norm_groups: int = 8
    sta_channels: int = 256
    use_sta: bool = True
    date_encoding: str = "date"
    max_period: float = 10000.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spatial_channels = tuple(int(c) for c in self.spatial_channels)
        if self.in_channels < 1 or self.num_classes < 1:
            raise ValueError("in_channels and num_classes must be >= 1")
        if not self.spatial_channels or self.spatial_channels[-1] != self.d_model:
            raise ValueError(f"spatial_channels[-1] ({self.spatial_channels}) must equal d_model ({self.d_model})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.d_model % self.norm_groups:
            raise ValueError(f"d_model {self.d_model} is not divisible by norm_groups {self.norm_groups}")
        if self.date_encoding not in DATE_ENCODINGS:
            raise ValueError(f"date_encoding must be one of {DATE_ENCODINGS}, not {self.date_encoding!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        d = asdict(self)
        d["spatial_channels"] = list(self.spatial_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "STCLNConfig":
        """Inverse of ``to_dict``; unknown keys are ignored so newer files still load."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def make_config(preset: str, in_channels: int, num_classes: int, **overrides: Any) -> STCLNConfig:
    """The config of ``preset`` (``paper`` or ``lite``) for this band and class count, with any field overridden."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values: dict[str, Any] = dict(PRESETS[preset])
    values.update(overrides)
    return STCLNConfig(in_channels=in_channels, num_classes=num_classes, preset=preset, **values)
