"""The STCLN network, its presets, date encodings and cost model. Imports only torch, numpy and einops."""

from .config import PRESETS, STCLNConfig, make_config
from .dates import date_positions, season_start_for
from .flops import count_parameters, flops_per_pixel
from .stcln import STCLN

__all__ = [
    "PRESETS",
    "STCLN",
    "STCLNConfig",
    "count_parameters",
    "date_positions",
    "flops_per_pixel",
    "make_config",
    "season_start_for",
]
