"""STCLN: spatial encoder, per-pixel temporal Transformer, SpatioTemporal Attention (STA), per-pixel head.

Internal token layout is ``(B, P, T, D)`` with ``P = H*W`` pixels: the Transformer's per-pixel sequences and STA's
flattened ``T*D`` queries and keys are then plain views, so no layout copy is paid between the two.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import STCLNConfig


class DoubleConv(nn.Sequential):
    """(3x3 conv without bias, BatchNorm, ReLU) twice; no downsampling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SpatialEncoder(nn.Sequential):
    """Double-conv blocks ``C -> spatial_channels[0] -> ... -> spatial_channels[-1]``, shared over dates."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        blocks = []
        for out_channels in channels:
            blocks.append(DoubleConv(in_channels, out_channels))
            in_channels = out_channels
        super().__init__(*blocks)


class TokenGroupNorm(nn.GroupNorm):
    """GroupNorm over the channels of each token separately (last axis), so results do not depend on the window."""

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        y = F.layer_norm(x.reshape(*shape[:-1], self.num_groups, shape[-1] // self.num_groups),
                         (shape[-1] // self.num_groups,), eps=self.eps)
        return torch.addcmul(self.bias.to(y.dtype), y.reshape(shape), self.weight.to(y.dtype))


def sinusoidal_encoding(positions: Tensor, d_model: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoidal encoding of (fractional) day positions: ``(..., ) -> (..., d_model)``."""
    half = d_model // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] * freqs
    enc = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # interleaved sin, cos
    if d_model % 2:
        enc = F.pad(enc, (0, 1))
    return enc


class TransformerLayer(nn.Module):
    """Post-norm Transformer encoder layer (as ``nn.TransformerEncoderLayer``, ReLU) with fused attention."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attend: Tensor) -> Tensor:
        """``x (N, T, D)``; ``attend (N, 1, 1, T)`` bool, True = key may be attended to."""
        n, t, d = x.shape
        qkv = self.qkv(x).view(n, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=attend, dropout_p=self.dropout if self.training else 0.0
        )
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(n, t, d))))
        return self.norm2(x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x))))))


class STA(nn.Module):
    """SpatioTemporal Attention: an ``HW x HW`` affinity between the window's pixels.

    Queries: per-date projection of the temporal features, flattened to ``T*S``; keys: the same from the spatial
    features; both zeroed at invalid steps. Values: projection of the temporal features max-pooled over valid
    dates. Output ``gamma * (A V) + V``.
    """

    def __init__(self, d_model: int, sta_channels: int) -> None:
        super().__init__()
        self.query = nn.Linear(d_model, sta_channels)
        self.key = nn.Linear(d_model, sta_channels)
        self.value = nn.Linear(d_model, d_model)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.scale = 1.0 / math.sqrt(sta_channels)

    def forward(self, temporal: Tensor, spatial: Tensor, pooled: Tensor, step_valid: Tensor, pixel_valid: Tensor) -> Tensor:
        """``temporal``/``spatial`` ``(B, P, T, D)``, ``pooled (B, P, D)``, ``step_valid (B, P, T, 1)``,
        ``pixel_valid (B, 1, 1, P)`` bool (True = pixel may be a key)."""
        b, p, t, _ = temporal.shape
        zero = torch.zeros((), dtype=temporal.dtype, device=temporal.device)
        q = self.query(temporal)
        k = self.key(spatial)
        q = torch.where(step_valid, q, zero.to(q.dtype)).reshape(b, 1, p, -1)
        k = torch.where(step_valid, k, zero.to(k.dtype)).reshape(b, 1, p, -1)
        v = self.value(pooled)
        a = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype)[:, None], attn_mask=pixel_valid,
                                           scale=self.scale)
        return torch.addcmul(v, a[:, 0].to(v.dtype), self.gamma.to(v.dtype))


class STCLN(nn.Module):
    """The SpatioTemporal Collaborative Learning Network.

    ``forward(x (B, T, C, H, W), positions (B, T), valid (B, T, H, W)) -> logits (B, K, H, W)``. Invalid inputs are
    zeroed here; invalid steps are excluded from temporal attention, from the max-pool and from both sides of STA's
    affinity. Pixels without any valid date give finite (meaningless) logits.
    """

    head_name = "head"

    def __init__(self, config: STCLNConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.spatial = SpatialEncoder(config.in_channels, config.spatial_channels)
        self.temporal_norm = TokenGroupNorm(config.norm_groups, d)
        self.layers = nn.ModuleList(
            TransformerLayer(d, config.n_heads, config.d_ff, config.dropout) for _ in range(config.n_layers)
        )
        self.sta = STA(d, config.sta_channels) if config.use_sta else None
        self.head = nn.Linear(d, config.num_classes)

    # -- pieces ---------------------------------------------------------------------------------------------------
    def _encode(self, x: Tensor, positions: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns spatial features ``(B, P, T, D)``, temporal features ``(B, P, T, D)`` and ``valid (B, P, T)``."""
        b, t, c, h, w = x.shape
        valid = valid.bool()
        x = torch.where(valid[:, :, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        feats = self.spatial(x.reshape(b * t, c, h, w).contiguous(memory_format=torch.channels_last))
        # channels-last (B*T, D, H, W) is (B, T, P, D) in memory; one copy brings pixels ahead of dates
        spatial = feats.permute(0, 2, 3, 1).reshape(b, t, h * w, -1).transpose(1, 2).contiguous()
        valid_pt = valid.reshape(b, t, h * w).transpose(1, 2)  # (B, P, T)
        tokens = self.temporal_norm(spatial)
        pe = sinusoidal_encoding(positions.to(x.device), self.config.d_model, self.config.max_period)
        tokens = tokens + pe[:, None].to(tokens.dtype)
        # pixels with no valid date attend to everything (output ignored but finite instead of NaN)
        attend = valid_pt | ~valid_pt.any(-1, keepdim=True)
        attend = attend.reshape(b * h * w, 1, 1, t)
        y = tokens.reshape(b * h * w, t, -1)
        for layer in self.layers:
            y = layer(y, attend)
        return spatial, y.reshape(b, h * w, t, -1), valid_pt

    @staticmethod
    def _pool(temporal: Tensor, valid_pt: Tensor) -> Tensor:
        """Max over valid dates ``(B, P, T, D) -> (B, P, D)``; pixels with none give 0."""
        masked = temporal.masked_fill(~valid_pt[..., None], float("-inf"))
        pooled = masked.amax(dim=2)
        return torch.where(valid_pt.any(-1, keepdim=True), pooled, torch.zeros((), dtype=pooled.dtype,
                                                                               device=pooled.device))

    def features(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        """Per-pixel features before the head, ``(B, P, D)``."""
        spatial, temporal, valid_pt = self._encode(x, positions, valid)
        pooled = self._pool(temporal, valid_pt)
        if self.sta is None:
            return pooled
        pixel_valid = valid_pt.any(-1)
        pixel_valid = pixel_valid | ~pixel_valid.any(-1, keepdim=True)  # a window with no valid pixel: all keys
        return self.sta(temporal, spatial, pooled, valid_pt[..., None], pixel_valid[:, None, None])

    # -- public -----------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        b, _, _, h, w = x.shape
        logits = self.head(self.features(x, positions, valid))
        return logits.transpose(1, 2).reshape(b, -1, h, w)

    def temporal_features(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        """The temporal encoder's output per date, ``(B, T, D, H, W)`` (for masked pre-training)."""
        b, t, _, h, w = x.shape
        _, temporal, _ = self._encode(x, positions, valid)
        return temporal.permute(0, 2, 3, 1).reshape(b, t, -1, h, w)

    def backbone_state_dict(self) -> dict[str, Tensor]:
        """The state dict without the classification head."""
        prefix = self.head_name + "."
        return {k: v for k, v in self.state_dict().items() if not k.startswith(prefix)}

    def load_backbone(self, state_dict: Mapping[str, Any]) -> Any:
        """Loads everything but the head from ``state_dict`` (``head.*`` and missing keys are ignored)."""
        prefix = self.head_name + "."
        backbone = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
        return self.load_state_dict(backbone, strict=False)
