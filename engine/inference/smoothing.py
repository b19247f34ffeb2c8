"""Bayesian spatial smoothing of class probabilities before the argmax, as the R package sits does it.

After Camara et al. (sits, ``sits_smooth``): per class, the pixel's logit ``x = log(p / (1 - p))`` is the
observation, a normal prior comes from its neighbourhood (mean ``m`` and variance ``s2`` of the logits of the
``neigh_fraction`` most probable neighbours of that class in a ``window`` x ``window`` window), and the posterior mean

    x' = (s2 * x + smoothness * m) / (s2 + smoothness)

replaces ``x``. A large ``smoothness`` (the variance the user grants a pixel's own logit) pulls pixels towards their
neighbourhood; a heterogeneous neighbourhood (large ``s2``) keeps the pixel's own value, so field edges survive.
The smoothed logits are turned back into probabilities and renormalised to sum 1.

With parcel ids, a pixel's neighbourhood holds only pixels of its own parcel (and pixels outside every parcel only
each other), so smoothing never mixes two parcels. Unmapped pixels (no data) are never neighbours and stay 0.
Blocks are smoothed one by one: near a block's edge (every ``block`` pixels of the map) the window is cut at the edge.

The options live in ``engine.smoothing_options`` so the command line can show them without importing torch.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import EngineError
from ..smoothing_options import SmoothingOptions

# sits keeps probabilities as integers 0..10000; clipping at 1e-4 likewise bounds the logits to about +-9.2.
_EPS = 1e-4
_CHUNK_VALUES = 8 * 1024 * 1024  # neighbourhood values held at once (float32), about 32 MB


def bayesian_smooth(probs: np.ndarray, options: SmoothingOptions = SmoothingOptions(),
                    parcels: Optional[np.ndarray] = None) -> np.ndarray:
    """Smoothed probabilities ``(K, H, W)`` float32 of ``probs`` (0 where a pixel is unmapped: all 0).

    ``parcels``: int ``(H, W)`` parcel ids (0 = no parcel) keeping neighbourhoods within parcels.
    """
    import torch
    import torch.nn.functional as F

    options.validate()
    probs = np.asarray(probs, dtype=np.float32)
    k, h, w = probs.shape
    mapped = probs.max(axis=0) > 0
    if k < 2 or not mapped.any():
        return probs.copy()
    if parcels is not None and parcels.shape != (h, w):
        raise EngineError(f"The parcel ids are {parcels.shape} but the probabilities {(h, w)}.")
    r = options.window // 2
    size = options.window * options.window
    p = torch.from_numpy(np.clip(probs, _EPS, 1.0 - _EPS))
    logits = torch.log(p) - torch.log1p(-p)
    # Group of each pixel: 0 = unmapped (never a neighbour), else 1 + parcel id (or 1 without parcels).
    ids = np.zeros((h, w), np.float64) if parcels is None else np.asarray(parcels, np.float64)
    group = torch.from_numpy(np.where(mapped, ids + 1.0, 0.0))
    padded_logits = F.pad(logits[None], (r, r, r, r))
    padded_group = F.pad(group[None, None], (r, r, r, r))
    out = torch.zeros_like(logits)
    rows = max(1, _CHUNK_VALUES // max(k * size * w, 1))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        n = (y1 - y0) * w
        # (K, n, size): the window of every pixel, contiguous along the window for a fast top-k.
        values = F.unfold(padded_logits[:, :, y0 : y1 + 2 * r], options.window).view(k, size, n).transpose(1, 2)
        groups = F.unfold(padded_group[:, :, y0 : y1 + 2 * r], options.window).view(size, n).T
        centre = group[y0:y1].reshape(n)
        same = (groups == centre[:, None]) & (centre[:, None] > 0)  # (n, size)
        take = torch.clamp(torch.ceil(options.neigh_fraction * same.sum(dim=1)), min=1)  # (n,)
        if options.neigh_fraction >= 1.0:  # every neighbour: no ranking needed
            top, chosen = values, same
        else:
            # The most probable ``take`` neighbours per class (others are -inf and sort last).
            neighbours = torch.where(same[None], values, torch.tensor(-math.inf))
            top = neighbours.topk(int(take.max()), dim=2, sorted=True).values
            chosen = torch.arange(top.shape[2])[None] < take[:, None]  # (n, kmax)
        mean = torch.where(chosen[None], top, torch.zeros(())).sum(dim=2) / take
        deviation = torch.where(chosen[None], (top - mean[..., None]) ** 2, torch.zeros(()))
        var = deviation.sum(dim=2) / torch.clamp(take - 1, min=1)
        x = logits[:, y0:y1].reshape(k, n)
        posterior = (var * x + options.smoothness * mean) / (var + options.smoothness)
        out[:, y0:y1] = posterior.view(k, y1 - y0, w)
    smoothed = torch.sigmoid(out).numpy()
    smoothed /= smoothed.sum(axis=0, keepdims=True)
    smoothed[:, ~mapped] = 0.0
    return smoothed.astype(np.float32, copy=False)
