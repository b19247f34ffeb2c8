"""Text and JSON descriptions of a preset's architecture or of a model file, for ``python -m engine info``."""

from __future__ import annotations

from .bundle import ModelBundle
from .model import STCLN, count_parameters, flops_per_pixel, make_config

# The window and date count at which FLOPs per pixel are quoted (the benchmark's setting).
REFERENCE_DATES, REFERENCE_WINDOW = 24, 32


def describe_preset(preset: str, bands: int, classes: int) -> tuple[str, dict]:
    """Architecture, parameter count and FLOPs per pixel of ``preset`` for ``bands`` bands and ``classes`` classes."""
    config = make_config(preset, bands, classes)
    return _describe_config(config, {"preset": preset})


def describe_model_file(path: str) -> tuple[str, dict]:
    """What a ``.cropmodel`` holds: architecture, bands, classes, dates, training provenance."""
    bundle = ModelBundle.load(path)
    text, data = _describe_config(bundle.config, {"preset": bundle.config.preset, "model": str(path)})
    provenance = bundle.provenance or {}
    data.update(
        kind=bundle.kind,
        bands=list(bundle.band_names),
        date_encoding=bundle.date_encoding,
        classes=bundle.classes.to_list() if bundle.classes is not None else [],
        validation=provenance.get("validation"),
        provenance={k: v for k, v in provenance.items() if k not in ("history",)},
    )
    lines = [text, f"Kind: {bundle.kind}", f"Bands: {', '.join(bundle.band_names)}",
             f"Date encoding: {bundle.date_encoding.get('mode')} (season start {bundle.date_encoding.get('season_start')})"]
    if bundle.classes is not None:
        lines.append("Classes: " + ", ".join(f"{c.value} {c.name}" for c in bundle.classes))
    inputs = provenance.get("inputs", {})
    if inputs.get("dates"):
        lines.append(f"Trained on {len(inputs['dates'])} dates, {inputs['dates'][0]} .. {inputs['dates'][-1]}")
    validation = provenance.get("validation") or {}
    if validation.get("miou") is not None:
        lines.append(f"Validation: OA {validation.get('overall_accuracy', 0):.3f}, mIoU {validation['miou']:.3f}")
    return "\n".join(lines), data


def _describe_config(config, data: dict) -> tuple[str, dict]:
    parameters = count_parameters(STCLN(config))
    flops = flops_per_pixel(config, REFERENCE_DATES, REFERENCE_WINDOW, REFERENCE_WINDOW)
    data = {
        **data,
        "parameters": parameters,
        "in_channels": config.in_channels,
        "num_classes": config.num_classes,
        "flops_per_pixel": flops,
        "flops_setting": {"dates": REFERENCE_DATES, "window": REFERENCE_WINDOW},
        "config": config.to_dict(),
    }
    text = "\n".join(
        [
            f"STCLN, preset '{config.preset}': {config.in_channels} bands -> {config.num_classes} classes",
            f"Spatial encoder: {config.in_channels} -> {' -> '.join(str(c) for c in config.spatial_channels)} channels "
            "(two double-conv blocks, 3x3, no downsampling)",
            f"Temporal encoder: {config.n_layers} post-norm Transformer layers, d {config.d_model}, "
            f"{config.n_heads} heads, feed-forward {config.d_ff}, dropout {config.dropout}; "
            f"date encoding '{config.date_encoding}'",
            f"STA: {'on' if config.use_sta else 'off'} (query/key width {config.sta_channels} per date)",
            f"Parameters: {parameters:,}",
            f"FLOPs per pixel: {flops / 1e6:.1f} M (T={REFERENCE_DATES}, window {REFERENCE_WINDOW}x{REFERENCE_WINDOW})",
        ]
    )
    return text, data
