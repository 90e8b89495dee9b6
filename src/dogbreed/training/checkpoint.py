"""Checkpoints are plain dicts of tensors and primitives, so `weights_only=True` loads them.

Written by the primary process only, atomically: `checkpoint.pth` (rolling, for resume)
and `best.pth` (the best weights so far).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from dogbreed.training.files import remove_partial_writes, torch_save_atomic
from dogbreed.training.loop import FitState

CHECKPOINT = "checkpoint.pth"
BEST = "best.pth"


class Checkpointer:
    def __init__(self, directory: str | os.PathLike | None, *, config: dict, args: dict, enabled: bool = True):
        self.dir = Path(directory) if directory else None
        self.config = config
        self.args = args
        self.enabled = enabled and self.dir is not None

    def save(self, model, optimizer, state: FitState, best_state_dict: dict | None, improved: bool) -> None:
        if not self.enabled:
            return
        net = getattr(model, "module", model)
        torch_save_atomic({
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "fit_state": dataclasses.asdict(state),
            "config": self.config,
            "args": self.args,
        }, self.dir / CHECKPOINT)
        if improved and best_state_dict is not None:
            torch_save_atomic(best_state_dict, self.dir / BEST)

    def load(self):
        """(checkpoint dict, best state dict) if a compatible checkpoint exists, else None."""
        import torch

        if not self.enabled:
            return None
        for name in (CHECKPOINT, BEST):  # best.pth may not be written again: its partial file would stay
            remove_partial_writes(self.dir / name)
        if not (self.dir / CHECKPOINT).is_file():
            return None
        ckpt = torch.load(self.dir / CHECKPOINT, map_location="cpu", weights_only=True)
        if ckpt.get("config") != self.config:
            print(f"warning: ignoring checkpoint in {self.dir}: it was written for a different model", flush=True)
            return None
        best = None
        if (self.dir / BEST).is_file():
            best = torch.load(self.dir / BEST, map_location="cpu", weights_only=True)
        return ckpt, best

    @staticmethod
    def fit_state(ckpt: dict) -> FitState:
        return FitState(**ckpt["fit_state"])
