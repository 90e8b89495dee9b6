"""The user's inference module (`code/inference.py`), loaded and validated like the toolkit's Transformer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from dogbreed.serving.errors import ModelLoadError

HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


class InferenceModule:
    """The entry point's handler functions: `model_fn` plus either `transform_fn` or all of
    `input_fn`, `predict_fn` and `output_fn`; anything else is a ModelLoadError naming the fix."""

    def __init__(self, entry_point: str | Path):
        path = Path(entry_point)
        if not path.is_file():
            raise ModelLoadError(f"inference entry point {path} does not exist")
        sys.path.insert(0, str(path.parent))  # the toolkit puts code/ on PYTHONPATH
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        fns = {n: getattr(module, n, None) for n in HANDLER_NAMES}
        self.path = path
        self.model_fn = fns["model_fn"]
        self.transform_fn = fns["transform_fn"]
        self.input_fn, self.predict_fn, self.output_fn = fns["input_fn"], fns["predict_fn"], fns["output_fn"]
        trio = [n for n in ("input_fn", "predict_fn", "output_fn") if fns[n]]
        if self.model_fn is None:
            raise ModelLoadError(f"{path} defines no model_fn(model_dir): implement it to load the model")
        if self.transform_fn and trio:
            raise ModelLoadError(f"{path} defines transform_fn and {', '.join(trio)}: use one or the other")
        if not self.transform_fn and len(trio) < 3:
            missing = sorted({"input_fn", "predict_fn", "output_fn"} - set(trio))
            raise ModelLoadError(f"{path} lacks {', '.join(missing)}: implement them (or transform_fn)")
