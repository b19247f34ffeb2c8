"""Run under torchrun by test_distributed_train.py: pre-training (fresh, and stopped + resumed) and fine-tuning.

Rank 0 writes ``result.json`` (histories) and ``states.pt`` (final weights) into the folder given as argument.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.model import make_config  # noqa: E402
from engine.training import Scene, finetune, pretrain  # noqa: E402
from engine.training.distributed import current, init_distributed  # noqa: E402
from tests.engine.synthetic import make_scene  # noqa: E402

# dropout 0: dropout masks are drawn per rank and could not match one process's masks
MODEL = dict(spatial_channels=(8, 16), d_model=16, n_heads=2, n_layers=1, d_ff=32, sta_channels=8, norm_groups=4,
             dropout=0.0)
PRETRAIN = dict(crop=12, batch_size=4, steps_per_epoch=2, lr=1e-4, seed=5, device="cpu", precision="fp32")
FINETUNE = dict(crop=12, batch_size=4, steps_per_epoch=2, lr=1e-4, seed=5, device="cpu", precision="fp32")


def scenes():
    s = make_scene(size=24, field=6, dates=5, bands=3, seed=2)
    part = s.field_ids % 3
    unlabelled = [Scene(s.x, s.valid, s.positions), Scene(s.x[:, :, :20, :18], s.valid[:, :20, :18], s.positions)]
    train = [Scene(s.x, s.valid, s.positions, np.where(part == 0, s.labels, 0), s.field_ids)]
    val = [Scene(s.x, s.valid, s.positions, np.where(part == 1, s.labels, 0), s.field_ids),
           Scene(s.x[:, :, :12], s.valid[:, :12], s.positions, np.where(part[:12] == 2, s.labels[:12], 0))]
    return unlabelled, train, val


def run_all(folder: Path) -> tuple[dict, dict]:
    """The same calls as the single-process reference in the test."""
    unlabelled, train, val = scenes()
    pre_config = make_config("lite", 3, 1, **MODEL)
    full = pretrain(unlabelled, pre_config, epochs=3, **PRETRAIN)
    pretrain(unlabelled, pre_config, epochs=2, checkpoint=str(folder / "pre.ckpt"), **PRETRAIN)
    resumed = pretrain(unlabelled, pre_config, epochs=3, checkpoint=str(folder / "pre.ckpt"), resume=True, **PRETRAIN)
    config = make_config("lite", 3, 3, **MODEL)
    tuned = finetune(train, val, config, init_state=full.state_dict, epochs=2, **FINETUNE)
    histories = {"pretrain": full.history, "resumed": resumed.history, "finetune": tuned.history}
    states = {"pretrain": full.state_dict, "resumed": resumed.state_dict, "finetune": tuned.state_dict}
    return histories, states


def main() -> None:
    torch.set_num_threads(1)
    folder = Path(sys.argv[1])
    info = init_distributed()
    histories, states = run_all(folder)
    if current().is_main:
        histories["world_size"] = info.world_size
        (folder / "result.json").write_text(json.dumps(histories))
        torch.save(states, folder / "states.pt")


if __name__ == "__main__":
    main()
