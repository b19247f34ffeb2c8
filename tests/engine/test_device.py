"""Choosing the device from the user's word."""

import pytest
import torch

from engine.device import describe_devices, resolve_device
from engine.errors import EngineError


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    if auto.type == "cuda":
        assert auto.index is not None, "set_device and memory queries need an index"
    assert "CPU" in describe_devices()


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_unknown_devices_are_user_errors(name):
    with pytest.raises(EngineError, match="cuda"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_what_to_do():
    with pytest.raises(EngineError, match="auto"):
        resolve_device("cuda:0")


@pytest.mark.gpu
def test_cuda_devices_have_an_index():
    assert resolve_device("cuda").index == torch.cuda.current_device()
    with pytest.raises(EngineError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
