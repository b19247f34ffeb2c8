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
from torch.utils.checkpoint import checkpoint

from .config import STCLNConfig
from .dropout import dropout
from .fast import linear, split_over_threads


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

    def forward(self, x: Tensor, shift: Tensor | None = None) -> Tensor:
        """The normalised ``x``, plus ``shift`` (broadcast to ``x``) in the same pass when given."""
        shape = x.shape
        y = F.layer_norm(x.reshape(*shape[:-1], self.num_groups, shape[-1] // self.num_groups),
                         (shape[-1] // self.num_groups,), eps=self.eps)
        bias = self.bias.to(y.dtype) if shift is None else shift.to(y.dtype) + self.bias.to(y.dtype)
        return torch.addcmul(bias, y.reshape(shape), self.weight.to(y.dtype))


def sinusoidal_encoding(positions: Tensor, d_model: int, max_period: float = 10000.0) -> Tensor:
    """Transformer sinusoidal encoding of (fractional) day positions: ``(..., ) -> (..., d_model)``."""
    half = d_model // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] * freqs
    enc = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # interleaved sin, cos
    if d_model % 2:
        enc = F.pad(enc, (0, 1))
    return enc


SDPA_MAX_BATCH = 32768


def fused_attention(q: Tensor, k: Tensor, v: Tensor, attend: Tensor, dropout_p: float,
                    max_batch: int = SDPA_MAX_BATCH) -> Tensor:
    """``scaled_dot_product_attention`` in slices of at most ``max_batch`` sequences: CUDA's fused kernels put the
    batch on a grid axis limited to 65535 (pytorch/pytorch#146704), which one sequence per pixel exceeds from 64
    windows of 32 x 32 on."""
    if q.shape[0] <= max_batch:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout_p)
    return torch.cat([
        F.scaled_dot_product_attention(q[i:i + max_batch], k[i:i + max_batch], v[i:i + max_batch],
                                       attn_mask=attend[i:i + max_batch], dropout_p=dropout_p)
        for i in range(0, q.shape[0], max_batch)
    ])


def _cpu_attention(qkv: Tensor, n_heads: int, bias: Tensor, dropout_p: float) -> Tensor:
    """Attention over few keys (the dates) for CPUs: ``qkv (N, T, 3*D)`` -> ``(N, T, D)``; matrix products in the
    input dtype, softmax in fp32.

    ``bias (N, 1, 1, T)`` is 0 for keys to attend to and -inf for the others. One copy puts queries, keys and values
    head-major, so both products are plain ``bmm``s (``matmul`` on the strided views copied each operand
    separately). With T ~ 24 keys and 32 channels per head, torch's fused CPU kernel runs at ~15 GFLOP/s on this
    project's benchmark CPU (one core, bf16); this runs at ~100.
    """
    n, t, d3 = qkv.shape
    d = d3 // 3
    dh = d // n_heads
    q, k, v = qkv.view(n, t, 3, n_heads, dh).permute(2, 0, 3, 1, 4).reshape(3, n * n_heads, t, dh)
    scores = torch.add(bias, torch.bmm(q, k.transpose(1, 2)).view(n, n_heads, t, t), alpha=dh ** -0.5)
    weights = dropout(scores.softmax(-1), dropout_p, training=dropout_p > 0).to(v.dtype)
    return torch.bmm(weights.view(n * n_heads, t, t), v).view(n, n_heads, t, dh).transpose(1, 2).reshape(n, t, d)


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

    def forward(self, x: Tensor, attend: Tensor, bias: Tensor | None = None) -> Tensor:
        """``x (N, T, D)``; ``attend (N, 1, 1, T)`` bool, True = key may be attended to; ``bias``: the same as
        an fp32 additive mask (0 / -inf), used on CPUs."""
        n, t, d = x.shape
        p = self.dropout if self.training else 0.0
        if x.device.type == "cpu":
            a = _cpu_attention(linear(self.qkv, x), self.n_heads, attention_bias(attend) if bias is None else bias, p)
        else:
            qkv = linear(self.qkv, x).view(n, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
            a = fused_attention(qkv[0], qkv[1], qkv[2], attend, p).transpose(1, 2).reshape(n, t, d)
        # in-place where autograd allows it: fewer fresh buffers (each one costs page faults on CPUs)
        x = self.norm1(_residual(dropout(linear(self.out, a), p, self.training), x))
        h = dropout(linear(self.ff1, x, relu=True), p, self.training)
        return self.norm2(_residual(dropout(linear(self.ff2, h), p, self.training), x))


def _join(parts: list[Tensor], dim: int) -> Tensor:
    """``torch.cat`` that does not copy a single part."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _residual(y: Tensor, x: Tensor) -> Tensor:
    """``y + x``, in place into ``y`` when that keeps the dtype of the sum (autocast may mix bf16 and fp32)."""
    return y.add_(x) if y.dtype == torch.promote_types(y.dtype, x.dtype) else x + y


def attention_bias(attend: Tensor) -> Tensor:
    """Boolean key mask -> fp32 additive mask (0 where True, -inf where False)."""
    zero = torch.zeros((), dtype=torch.float32, device=attend.device)
    return torch.where(attend, zero, torch.full((), float("-inf"), device=attend.device))


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

    @staticmethod
    def _flat(proj: Tensor, step_valid: Tensor) -> Tensor:
        """``(N, P, T, S) -> (N, P, T*S)`` with invalid steps zeroed (in place: ``proj`` is a fresh projection)."""
        # skipped on CPUs when every step is valid (the check would cost a GPU a synchronisation); a product with
        # the 0/1 mask, not masked_fill_, which is ~4x slower on CPUs (``proj`` is finite: invalid inputs are zeroed)
        if proj.device.type != "cpu" or not bool(step_valid.all()):
            proj = proj.mul_(step_valid[..., None].to(proj.dtype))
        return proj.flatten(-2)

    def queries(self, temporal: Tensor, step_valid: Tensor) -> Tensor:
        """``temporal (N, P, T, D)``, ``step_valid (N, P, T)`` -> ``(N, P, T*S)``."""
        return self._flat(linear(self.query, temporal), step_valid)

    def keys(self, spatial: Tensor, step_valid: Tensor) -> Tensor:
        """``spatial (N, P, T, D)``, ``step_valid (N, P, T)`` -> ``(N, P, T*S)``."""
        return self._flat(linear(self.key, spatial), step_valid)

    def values(self, pooled: Tensor) -> Tensor:
        """``pooled (N, P, D)`` (temporal features max-pooled over valid dates) -> ``(N, P, D)``."""
        return linear(self.value, pooled)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, v_query: Tensor, pixel_valid: Tensor) -> Tensor:
        """Output for the query pixels: ``q (N, P', T*S)``; all of the window's ``k (N, P, T*S)`` and ``v (N, P, D)``;
        ``v_query (N, P', D)`` the query pixels' values; ``pixel_valid (N, P)`` the keys allowed -> ``(N, P', D)``.

        Query pixels may be any subset of the window (rows of the affinity are independent), so CPUs run it per chunk
        of the temporal encoder without concatenating the queries.
        """
        k = k.to(q.dtype)
        bias = torch.zeros((), dtype=q.dtype, device=q.device).masked_fill(~pixel_valid[:, None, :], float("-inf"))
        # bmm, not matmul: on CPUs matmul copies the transposed keys first (~1.8x slower here)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=self.scale)
        a = torch.bmm(scores.softmax(-1, dtype=torch.float32).to(v.dtype), v)
        return torch.addcmul(v_query, a, self.gamma.to(v.dtype))


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
        # None: the temporal encoder sees the whole batch at once (training, GPUs); an int: that many pixels of
        # one window at a time (set by ``prepare_for_inference`` on CPUs; same results)
        self.pixel_chunk: int | None = None
        # > 1: batches are split over that many single-threaded workers in inference (CPUs; prepare_for_inference)
        self.cpu_workers = 1
        # None: training keeps every temporal-encoder activation for the backward; an int: the encoder runs that many
        # pixels (of all windows) at a time and recomputes them in the backward (torch.utils.checkpoint), so its
        # memory no longer grows with T^2 x pixels (set by the training loop for long series; same results)
        self.recompute_chunk: int | None = None

    # -- pieces ---------------------------------------------------------------------------------------------------
    def _spatial(self, x: Tensor, valid: Tensor) -> Tensor:
        """Spatial features as a ``(B, P, T, D)`` view (channels-last memory is ``(B, T, P, D)``)."""
        b, t, c, h, w = x.shape
        x = x.to(self.head.weight.dtype)  # a model converted to bf16 (prepare_for_inference) takes fp32 input too
        x = torch.where(valid[:, :, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        feats = self.spatial(x.reshape(b * t, c, h, w).contiguous(memory_format=torch.channels_last))
        return feats.permute(0, 2, 3, 1).reshape(b, t, h * w, -1).transpose(1, 2)

    def _temporal(self, spatial: Tensor, pe: Tensor, step_valid: Tensor) -> Tensor:
        """Temporal encoder over ``spatial (N, P, T, D)`` with ``pe (N, T, D)``, ``step_valid (N, P, T)``."""
        n, p, t, d = spatial.shape
        tokens = self.temporal_norm(spatial, shift=pe[:, None])
        # pixels with no valid date attend to everything (output ignored but finite instead of NaN)
        attend = (step_valid | ~step_valid.any(-1, keepdim=True)).reshape(n * p, 1, 1, t)
        bias = attention_bias(attend) if spatial.device.type == "cpu" else None
        y = tokens.reshape(n * p, t, d)
        for layer in self.layers:
            y = layer(y, attend, bias)
        return y.reshape(n, p, t, d)

    def _recomputing(self) -> bool:
        return bool(self.recompute_chunk) and torch.is_grad_enabled()

    def _blocks(self, b: int, p: int) -> list[tuple[slice, list[slice]]]:
        """Pixel blocks for the temporal encoder: all at once, ``recompute_chunk`` pixels of every window at a time
        (training), or ``pixel_chunk`` pixels of one window at a time (inference)."""
        if self._recomputing():
            return [(slice(None), [slice(j, j + self.recompute_chunk) for j in range(0, p, self.recompute_chunk)])]
        if not self.pixel_chunk:
            return [(slice(None), [slice(None)])]
        return [(slice(i, i + 1), [slice(j, j + self.pixel_chunk) for j in range(0, p, self.pixel_chunk)])
                for i in range(b)]

    def _encode(self, x: Tensor, positions: Tensor, valid: Tensor):
        """Spatial features ``(B, P, T, D)``, step validity ``(B, P, T)``, and per window block its temporal
        encoding chunk by chunk: ``[(batch slice, [(pixel slice, temporal (N, P', T, D)), ...]), ...]``
        (a generator, so a chunk's activations can be used while they are in cache)."""
        valid = valid.bool()
        b, t, _, h, w = x.shape
        spatial = self._spatial(x, valid)
        step_valid = valid.reshape(b, t, h * w).transpose(1, 2)
        pe = sinusoidal_encoding(positions.to(x.device), self.config.d_model, self.config.max_period)

        recompute = self._recomputing()

        def chunks(bs: slice, pixel_slices: list[slice]):
            for ps in pixel_slices:
                if recompute:  # the RNG state is restored for the recomputation: the same dropout masks
                    yield ps, checkpoint(self._temporal, spatial[bs, ps], pe[bs], step_valid[bs, ps],
                                         use_reentrant=False)
                else:
                    yield ps, self._temporal(spatial[bs, ps], pe[bs], step_valid[bs, ps])

        return spatial, step_valid, [(bs, chunks(bs, ps)) for bs, ps in self._blocks(b, h * w)]

    @staticmethod
    def _pool(temporal: Tensor, step_valid: Tensor) -> Tensor:
        """Max over valid dates ``(N, P, T, D) -> (N, P, D)``; pixels with none give 0."""
        # adding a 0 / -inf mask: masked_fill is ~3x slower on CPUs
        pooled = (temporal + attention_bias(step_valid[..., None]).to(temporal.dtype)).amax(dim=2)
        return torch.where(step_valid.any(-1, keepdim=True), pooled,
                           torch.zeros((), dtype=pooled.dtype, device=pooled.device))

    def features(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        """Per-pixel features before the head, ``(B, P, D)``."""
        sta = self.sta
        spatial, step_valid, blocks = self._encode(x, positions, valid)
        if sta is not None:
            pixel_valid = step_valid.any(-1)
            pixel_valid = pixel_valid | ~pixel_valid.any(-1, keepdim=True)  # a window with no valid pixel: all keys
        rows = []
        for bs, chunks in blocks:
            if sta is None:
                rows.append(_join([self._pool(y, step_valid[bs, ps]) for ps, y in chunks], dim=1))
                continue
            queries, pooled = [], []
            for ps, y in chunks:
                queries.append((ps, sta.queries(y, step_valid[bs, ps])))
                pooled.append(self._pool(y, step_valid[bs, ps]))
            k = sta.keys(spatial[bs], step_valid[bs])
            v = sta.values(_join(pooled, dim=1))
            rows.append(_join([sta.attend(q, k, v, v[:, ps], pixel_valid[bs]) for ps, q in queries], dim=1))
        return _join(rows, dim=0)

    # -- public -----------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        if self.pixel_chunk and x.shape[0] > 1 and x.device.type == "cpu" and not torch.is_grad_enabled():
            return split_over_threads(self._forward, self.cpu_workers, x, positions, valid)
        return self._forward(x, positions, valid)

    def _forward(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        b, _, _, h, w = x.shape
        logits = linear(self.head, self.features(x, positions, valid))
        return logits.float().transpose(1, 2).reshape(b, -1, h, w)

    def temporal_features(self, x: Tensor, positions: Tensor, valid: Tensor) -> Tensor:
        """The temporal encoder's output per date, ``(B, T, D, H, W)`` (for masked pre-training)."""
        b, t, _, h, w = x.shape
        _, _, blocks = self._encode(x, positions, valid)
        temporal = _join([_join([y for _, y in chunks], dim=1) for _, chunks in blocks], dim=0)
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
