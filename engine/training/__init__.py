"""Masked pre-training, fine-tuning, checkpoints and resume, data-parallel (torchrun) training."""

from .finetune import FinetuneResult, finetune
from .masking import make_pretraining_mask, masked_reconstruction_loss
from .pretrain import PretrainResult, pretrain
from .scene import Scene

__all__ = [
    "FinetuneResult",
    "PretrainResult",
    "Scene",
    "finetune",
    "make_pretraining_mask",
    "masked_reconstruction_loss",
    "pretrain",
]
