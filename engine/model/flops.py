"""Parameter count and an analytic FLOP count of one STCLN forward pass.

FLOPs = 2 x multiply-accumulates of every convolution, linear layer and attention matrix product (QK^T and AV of
the temporal attention and of STA). Element-wise work (norms, activations, softmax, masking, max-pool) is not
counted: it is well under 1 % of the total for both presets.
"""

from __future__ import annotations

from torch import nn

from .config import STCLNConfig


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that require a gradient)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def macs_per_pixel(config: STCLNConfig, t: int, h: int, w: int) -> dict[str, float]:
    """Multiply-accumulates per output pixel, by part, for ``t`` dates and an ``h x w`` window."""
    d, ff, s = config.d_model, config.d_ff, config.sta_channels
    spatial = 0
    c_in = config.in_channels
    for c_out in config.spatial_channels:
        spatial += 9 * (c_in * c_out + c_out * c_out)
        c_in = c_out
    spatial *= t
    per_token = 4 * d * d + 2 * d * ff + 2 * t * d  # qkv + out projection, feed-forward, QK^T + AV over t keys
    temporal = config.n_layers * t * per_token
    sta = 0.0
    if config.use_sta:
        p = h * w
        sta = t * d * s * 2 + d * d + p * t * s + p * d  # q, k, v projections; QK^T over p keys; AV
    head = d * config.num_classes
    return {"spatial": float(spatial), "temporal": float(temporal), "sta": float(sta), "head": float(head)}


def flops_per_pixel(config: STCLNConfig, t: int, h: int, w: int) -> float:
    """FLOPs (2 x MACs) per output pixel of one forward pass over an ``h x w`` window of ``t`` dates."""
    return 2.0 * sum(macs_per_pixel(config, t, h, w).values())
