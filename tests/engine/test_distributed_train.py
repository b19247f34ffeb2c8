"""Data-parallel training under torchrun with 2 CPU processes (gloo) matches one process on the same global batch.

Every rank draws the same global batch from (seed, epoch) and trains on its half; losses are normalised by the
global count and BatchNorm uses global-batch statistics, so the two runs compute the same thing up to float
summation order. Stated tolerance: loss curves and validation metrics within 1e-5 relative, final weights within
2e-5 absolute (measured here: losses within 3.2e-7 relative, weights within 2e-6). The learning rate is the design's
1e-4: Adam turns float noise in gradients that are mathematically zero (e.g. attention key biases) into steps of up to
lr, so at lr 1e-3 the curves drift apart by about 2e-4 relative within six steps, in either run alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.engine import _dist_train_script as script

REPO = Path(__file__).resolve().parents[2]
RTOL = 1e-5


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(script.__file__)), str(folder)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((folder / "result.json").read_text()), torch.load(folder / "states.pt", weights_only=True)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[dict, dict]:
    return script.run_all(tmp_path_factory.mktemp("single"))


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= RTOL * max(abs(x), abs(y), 1e-12) for x, y in zip(a, b))


def test_two_processes_match_one_process(distributed_run, single_run) -> None:
    dist_hist, dist_states = distributed_run
    single_hist, single_states = single_run
    assert dist_hist["world_size"] == 2
    for step in ("pretrain", "finetune"):
        assert _close([h["loss"] for h in dist_hist[step]], [h["loss"] for h in single_hist[step]]), step
    assert _close([h["val_oa"] for h in dist_hist["finetune"]], [h["val_oa"] for h in single_hist["finetune"]])
    assert _close([h["val_miou"] for h in dist_hist["finetune"]], [h["val_miou"] for h in single_hist["finetune"]])
    for step in ("pretrain", "finetune"):
        for name, value in single_states[step].items():
            if value.is_floating_point():
                assert torch.allclose(dist_states[step][name], value, rtol=0, atol=2e-5), (step, name)


def test_resume_under_torchrun_equals_the_uninterrupted_run(distributed_run) -> None:
    hist, states = distributed_run
    assert [h["loss"] for h in hist["resumed"]] == [h["loss"] for h in hist["pretrain"]]
    assert all(torch.equal(v, states["resumed"][k]) for k, v in states["pretrain"].items())
