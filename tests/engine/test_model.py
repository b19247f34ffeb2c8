"""STCLN: sizes, gradients, masking semantics, FLOP count, backbone loading."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from engine.model import STCLN, STCLNConfig, count_parameters, flops_per_pixel, make_config


def _inputs(b: int, t: int, c: int, h: int, w: int, p_valid: float = 0.8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, h, w, generator=g)
    valid = torch.rand(b, t, h, w, generator=g) < p_valid
    positions = torch.cumsum(torch.randint(1, 20, (b, t), generator=g), dim=1).float()
    return x, positions, valid


def test_paper_preset_size_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = STCLN(make_config("paper", in_channels=10, num_classes=20))
    assert 3_000_000 <= count_parameters(model) <= 3_500_000
    assert model.sta.gamma.item() == 0.0  # starts at 0 ...
    with torch.no_grad():
        model.sta.gamma.fill_(0.5)  # ... which would block gradients into the affinity branch
    model.train()
    x, positions, valid = _inputs(2, 3, 10, 6, 6)
    logits = model(x, positions, valid)
    labels = torch.randint(0, 20, (2, 6, 6))
    F.cross_entropy(logits, labels).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert dead == []


def test_gamma_starts_at_zero():
    for preset in ("paper", "lite"):
        model = STCLN(make_config(preset, 4, 3))
        assert model.sta.gamma.shape == (1,) and model.sta.gamma.item() == 0.0


@pytest.mark.parametrize("preset", ["paper", "lite"])
def test_odd_sizes(preset):
    model = STCLN(make_config(preset, in_channels=1, num_classes=5)).eval()
    x, positions, valid = _inputs(1, 1, 1, 7, 7)
    with torch.no_grad():
        assert model(x, positions, valid).shape == (1, 5, 7, 7)
        assert model.temporal_features(x, positions, valid).shape == (1, 1, model.config.d_model, 7, 7)
        x, positions, valid = _inputs(3, 5, 1, 3, 9)
        assert model(x, positions, valid).shape == (3, 5, 3, 9)


def test_no_valid_date_gives_finite_output_and_raw_invalid_values_never_matter():
    model = STCLN(make_config("lite", 3, 4)).eval()
    with torch.no_grad():
        model.sta.gamma.fill_(1.0)
    x, positions, valid = _inputs(2, 4, 3, 5, 5)
    valid[0] = False  # a whole window without any observation
    valid[1, :, 2, 2] = False  # one pixel without any observation
    with torch.no_grad():
        out = model(x, positions, valid)
        assert torch.isfinite(out).all()
        garbage = torch.where(valid[:, :, None], x, torch.full_like(x, float("nan")))
        torch.testing.assert_close(model(garbage, positions, valid), out)


@pytest.mark.parametrize("preset", ["paper", "lite"])
def test_date_invalid_everywhere_equals_date_left_out(preset):
    torch.manual_seed(1)
    model = STCLN(make_config(preset, in_channels=3, num_classes=6, dropout=0.0)).eval()
    with torch.no_grad():
        model.sta.gamma.fill_(0.8)  # make STA's affinity count
    x, positions, valid = _inputs(2, 5, 3, 6, 6)
    keep = [0, 1, 3, 4]
    valid[:, 2] = False
    x[:, 2] = 1e6  # must never reach the model
    with torch.no_grad():
        full = model(x, positions, valid)
        dropped = model(x[:, keep], positions[:, keep], valid[:, keep])
        torch.testing.assert_close(full, dropped, rtol=1e-4, atol=1e-4)
        tf_full = model.temporal_features(x, positions, valid)[:, keep]
        tf_dropped = model.temporal_features(x[:, keep], positions[:, keep], valid[:, keep])
        torch.testing.assert_close(tf_full, tf_dropped, rtol=1e-4, atol=1e-4)
        # and the check can fail: a valid extra date does change the result
        valid[:, 2] = True
        assert not torch.allclose(model(x, positions, valid), dropped, atol=1e-3)


def test_lite_preset_works_and_config_round_trips():
    config = make_config("lite", in_channels=10, num_classes=20)
    assert config.d_model < 256 and config.preset == "lite"
    assert STCLNConfig.from_dict(config.to_dict()) == config
    model = STCLN(config).eval()
    x, positions, valid = _inputs(2, 6, 10, 8, 8)
    with torch.no_grad():
        assert model(x, positions, valid).shape == (2, 20, 8, 8)
    assert count_parameters(model) < count_parameters(STCLN(make_config("paper", 10, 20))) / 10


def test_sta_off_ablation_and_index_encoding():
    config = make_config("lite", 4, 3, use_sta=False, date_encoding="index")
    model = STCLN(config).eval()
    assert model.sta is None
    x, positions, valid = _inputs(1, 3, 4, 5, 5)
    with torch.no_grad():
        assert model(x, positions, valid).shape == (1, 3, 5, 5)
    with pytest.raises(ValueError):
        make_config("lite", 4, 3, date_encoding="doy")
    with pytest.raises(ValueError):
        make_config("huge", 4, 3)


def test_load_backbone_ignores_head():
    torch.manual_seed(0)
    source = STCLN(make_config("lite", 4, 7))
    target = STCLN(make_config("lite", 4, 3))
    head_before = target.head.weight.clone()
    result = target.load_backbone(source.state_dict())
    assert list(result.unexpected_keys) == []
    assert all(k.startswith("head.") for k in result.missing_keys)
    torch.testing.assert_close(target.layers[0].qkv.weight, source.layers[0].qkv.weight)
    torch.testing.assert_close(target.head.weight, head_before)
    assert not any(k.startswith("head.") for k in source.backbone_state_dict())


@pytest.mark.parametrize("preset", ["paper", "lite"])
def test_analytic_flops_match_torch_flop_counter(preset):
    config = make_config(preset, in_channels=10, num_classes=20)
    model = STCLN(config).eval()
    b, t, h, w = 2, 6, 5, 7
    x, positions, valid = _inputs(b, t, 10, h, w, p_valid=1.0)
    counter = FlopCounterMode(display=False)
    # with autograd on, the plain torch path runs (the counter does not see oneDNN's fused linear)
    with sdpa_kernel(SDPBackend.MATH), counter:  # the math path shows SDPA as counted bmm's
        model(x, positions, valid)
    assert counter.get_total_flops() / (b * h * w) == pytest.approx(flops_per_pixel(config, t, h, w), rel=1e-6)


@pytest.mark.parametrize("preset", ["paper", "lite"])
def test_chunked_inference_path_gives_the_same_result(preset):
    from engine.model.fast import inference_context, prepare_for_inference

    torch.manual_seed(2)
    model = STCLN(make_config(preset, in_channels=4, num_classes=5)).eval()
    with torch.no_grad():
        model.sta.gamma.fill_(0.5)
        for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # as after training
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    x, positions, valid = _inputs(2, 4, 4, 5, 7)
    valid[1, :, 0, :3] = False
    with torch.no_grad():
        reference = model(x, positions, valid)
        features = model.temporal_features(x, positions, valid)
    fast = prepare_for_inference(copy.deepcopy(model), "cpu", precision="fp32")
    fast.pixel_chunk = 15  # 35 pixels per window: uneven chunks
    fast.cpu_workers = 2  # the batch split over two single-threaded workers
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # folded into the convolutions
    with torch.inference_mode():
        torch.testing.assert_close(fast(x, positions, valid), reference, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast.temporal_features(x, positions, valid), features, rtol=1e-4, atol=1e-4)
    low = prepare_for_inference(copy.deepcopy(model), "cpu", precision="bf16")
    with torch.inference_mode(), inference_context("cpu", "bf16"):
        out = low(x, positions, valid)
    assert out.dtype == torch.float32
    assert (out.argmax(1) == reference.argmax(1)).float().mean() > 0.9


@pytest.mark.gpu
def test_cuda_bf16_agrees_with_cpu_fp32():
    from engine.model.fast import inference_context, prepare_for_inference

    torch.manual_seed(3)
    model = STCLN(make_config("paper", in_channels=10, num_classes=20)).eval()
    with torch.no_grad():
        model.sta.gamma.fill_(0.5)
    x, positions, valid = _inputs(4, 12, 10, 32, 32)
    with torch.inference_mode():
        reference = model(x, positions, valid).argmax(1)
    cuda = prepare_for_inference(copy.deepcopy(model), "cuda")
    with torch.inference_mode(), inference_context("cuda", "bf16"):
        out = cuda(x.cuda(), positions.cuda(), valid.cuda())
    assert out.shape == (4, 20, 32, 32) and torch.isfinite(out).all()
    assert (out.argmax(1).cpu() == reference).float().mean() >= 0.99


def test_fused_attention_in_slices_equals_one_call_and_cpu_attention():
    from engine.model.stcln import _cpu_attention, attention_bias, fused_attention

    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(7, 2, 5, 8, generator=g) for _ in range(3))
    attend = torch.rand(7, 1, 1, 5, generator=g) > 0.3
    attend[:, ..., 0] = True
    whole = fused_attention(q, k, v, attend, 0.0)
    torch.testing.assert_close(fused_attention(q, k, v, attend, 0.0, max_batch=3), whole)
    # the CPU version takes the QKV projection's layout (N, T, 3 * heads * channels) and returns (N, T, D)
    qkv = torch.stack([q, k, v], dim=2).permute(0, 3, 2, 1, 4).reshape(7, 5, 3 * 2 * 8)
    cpu = _cpu_attention(qkv, 2, attention_bias(attend), 0.0)
    torch.testing.assert_close(cpu, whole.transpose(1, 2).reshape(7, 5, 16), rtol=1e-5, atol=1e-5)


def test_onednn_linear_probe_does_not_depend_on_the_callers_autocast():
    # The probe's answer is cached for the process: a first call from inside bf16 autocast (as in predict_array)
    # must not switch the fast linear path off for good.
    from engine.model import fast

    fast._onednn_linear_works.cache_clear()
    try:
        outside = fast._onednn_linear_works()
        fast._onednn_linear_works.cache_clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = fast._onednn_linear_works()
    finally:
        fast._onednn_linear_works.cache_clear()
    assert inside == outside
    assert inside == hasattr(torch.ops.mkldnn, "_linear_pointwise")
