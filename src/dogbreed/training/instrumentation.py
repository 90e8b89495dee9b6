"""Where the debugger hook and the profiler attach to the training loop.

The loop calls these methods unconditionally; when instrumentation is off a null object
stands in, so the loop has no branches for it (nanoGPT's nullcontext habit).

- `DebuggerHook`: smdebug's hook, configured by the hook config file the platform writes
  (`SMDEBUG_CONFIG_FILE_PATH`, else /opt/ml/input/config/debughookconfig.json). No file, no hook.
- `StepRecorder`: step and data-wait times as JSON lines in `$DOGBREED_PROFILE_DIR` (set by
  the local backend, whose sampler records the system metrics beside them).
- `SystemMonitor`: the system sampler run by the script itself (SageMaker `client` debugger
  mode, where no platform monitor runs), when `$DOGBREED_SYSTEM_MONITOR` is set.

In the `client` mode SageMaker writes no hook config: `$DOGBREED_HOOK_CONFIG` carries the
document (JSON) instead, with each collection in its own `$DOGBREED_HOOK_COLLECTION_<n>`;
its `LocalPath` lies under the checkpoint folder, which SageMaker syncs
to S3 while the job runs, and the hook writes the end marker when it closes (the platform
writes it only for its own rule jobs).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from dogbreed.training import environment as E
from dogbreed.training.batched_saves import SUPPORTED, BatchedSaves, reduce_many

STEPS_FILE = "steps.jsonl"
DOGBREED_HOOK_CONFIG = "DOGBREED_HOOK_CONFIG"  # the debughookconfig.json document, when no file is given
# ... its collections, one per variable (SageMaker allows 512 characters per environment value)
DOGBREED_HOOK_COLLECTION = "DOGBREED_HOOK_COLLECTION_"
DOGBREED_SYSTEM_MONITOR = "DOGBREED_SYSTEM_MONITOR"  # JSON {"dir": profiler dir, "interval_ms": N}
END_MARKER = "training_job_end.ts"


class NullInstrumentation:
    """Does nothing. Real implementations override every method."""

    def attach(self, model, loss_fn) -> None:
        """Called once, after the model is built and moved to its device."""

    def set_mode(self, mode: str) -> None:
        """'train' before each training epoch, 'eval' before each evaluation pass."""

    def record_step(self, *, data_wait_s: float, step_s: float, batch_size: int) -> None:
        """After each training step: time spent waiting for the batch and computing it."""

    def close(self) -> None:
        """At the end of the script, also after a failure."""


class DebuggerHook(NullInstrumentation):
    """smdebug's PyTorch hook: saves the configured collections of the model and the loss."""

    def __init__(self, hook, modes, end_marker_dir: Path | None = None):
        self.hook, self.modes, self.end_marker_dir = hook, modes, end_marker_dir
        self.saves = None

    def attach(self, model, loss_fn) -> None:
        self.hook._get_reduction_of_data = FusedReductions(type(self.hook)._get_reduction_of_data)
        self.saves = BatchedSaves(self.hook)
        self.saves.install()
        if self._saves_module_tensors(model):
            self.hook.register_module(model)
        else:
            # register_module also puts a Python forward hook on every submodule, to save module
            # inputs/outputs. When no configured collection saves any, those hooks only cost
            # time (~8% of a ResNet step): register the rest (step and parameter hooks) alone.
            self.hook._closure_for_registering_forward_hook = lambda module: None
            try:
                self.hook.register_module(model)
            finally:
                del self.hook._closure_for_registering_forward_hook
        self.hook.register_loss(loss_fn)
        self._skip_frozen_parameters(model)

    def _saves_module_tensors(self, model, max_index: int = 8) -> bool:
        """Whether a collection the hook saves matches a submodule's input or output tensor
        (smdebug names them `<module>_input_<i>` / `<module>_output_<i>`)."""
        from smdebug.core.utils import match_inc

        manager, include = self.hook.collection_manager, set(self.hook.include_collections)
        saved = [c for name, c in manager.get_collections().items() if "all" in include or name in include]
        names = [name or model._get_name() for name, _ in model.named_modules()]
        return any(f"{name}_{kind}_{i}" in c.tensor_names or match_inc(f"{name}_{kind}_{i}", c.include_regex)
                   for c in saved for name in names for kind in ("input", "output") for i in range(max_index))

    def _skip_frozen_parameters(self, model) -> None:
        """With a frozen backbone, save only the parameters training changes: the frozen ones
        are the same at every step (a resnet50 backbone is ~100 MB per save)."""
        import re

        params = list(model.named_parameters())
        trainable = [name for name, p in params if p.requires_grad]
        if len(trainable) == len(params):
            return
        prefix = re.escape(model._get_name() + "_")  # smdebug names parameters <Module>_<name>
        for key, suffix in (("weights", "weight"), ("biases", "bias")):
            coll = self.hook.collection_manager.collections.get(key)
            names = [re.escape(n) for n in trainable if n.endswith(suffix)]
            if coll is not None:  # an empty alternation would match everything: (?!) matches nothing
                coll.include_regex = [f"^{prefix}(?:{'|'.join(names)})$" if names else "(?!)"]

    def set_mode(self, mode: str) -> None:
        self.hook.set_mode(self.modes.TRAIN if mode == "train" else self.modes.EVAL)

    def record_step(self, **_) -> None:
        if self.saves is not None:
            self.saves.flush_gradients()

    def close(self) -> None:
        self.hook.close()
        if self.end_marker_dir is not None:  # readers of a synced copy know the trial is complete
            self.end_marker_dir.mkdir(parents=True, exist_ok=True)
            (self.end_marker_dir / END_MARKER).write_text(str(time.time()))


class FusedReductions:
    """smdebug's `_get_reduction_of_data`, computing a tensor's statistics in one go, for the
    tensors smdebug still saves itself (see `batched_saves`).

    smdebug asks for one reduction at a time (a torch op, and a device-to-host copy, each).
    The first request for a tensor computes every statistic `batched_saves` knows and copies
    them once; the other requests for the same tensor read them. Anything else goes to
    smdebug's own.
    """

    _STATS = tuple(sorted(SUPPORTED))

    def __init__(self, fallback):
        self.fallback = fallback
        self._tensor = self._stats = self._version = None  # the last tensor (kept alive: its id stays unique)

    def __call__(self, reduction_name, tensor_value, tensor_name, abs):
        import torch

        key = (reduction_name, bool(abs))
        if not isinstance(tensor_value, torch.Tensor) or key not in SUPPORTED or tensor_value.numel() < 2:
            return self.fallback(reduction_name, tensor_value, tensor_name, abs)
        if tensor_value is not self._tensor or tensor_value._version != self._version:  # new, or changed in place
            values = torch.from_numpy(reduce_many([tensor_value], self._STATS)[0])  # 0-dim tensors, as smdebug's
            self._tensor, self._version = tensor_value, tensor_value._version
            self._stats = dict(zip(self._STATS, values))
        return self._stats[key]


class SystemMonitor(NullInstrumentation):
    """Runs `system_monitor.SystemSampler` for the length of the script."""

    def __init__(self, profiler_dir: Path, interval_s: float):
        from dogbreed.training.system_monitor import SystemSampler

        self.sampler = SystemSampler(profiler_dir, interval_s)
        self.sampler.start()

    def close(self) -> None:
        if self.sampler.is_alive():
            self.sampler.stop()


class StepRecorder(NullInstrumentation):
    """Appends one JSON line per training step: wall time, step time, data-wait time."""

    def __init__(self, directory: Path, flush_every: int = 20, rank: int = 0):
        directory.mkdir(parents=True, exist_ok=True)
        name = STEPS_FILE if rank == 0 else f"steps.rank{rank}.jsonl"
        self._fh = open(directory / name, "a", buffering=1 << 16)
        self._flush_every, self._pending, self._step, self._mode = flush_every, 0, 0, "train"

    def set_mode(self, mode: str) -> None:
        self._mode = mode
        self._fh.flush()

    def record_step(self, *, data_wait_s: float, step_s: float, batch_size: int) -> None:
        self._fh.write(json.dumps({"step": self._step, "t": round(time.time(), 4), "step_s": round(step_s, 6),
                                   "data_wait_s": round(data_wait_s, 6), "batch_size": batch_size}) + "\n")
        self._step += 1
        self._pending += 1
        if self._pending >= self._flush_every:  # the sampler reads this file while the job runs
            self._fh.flush()
            self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class Composite(NullInstrumentation):
    def __init__(self, parts):
        self.parts = list(parts)

    def attach(self, model, loss_fn) -> None:
        for p in self.parts:
            p.attach(model, loss_fn)

    def set_mode(self, mode: str) -> None:
        for p in self.parts:
            p.set_mode(mode)

    def record_step(self, **kw) -> None:
        for p in self.parts:
            p.record_step(**kw)

    def close(self) -> None:
        for p in self.parts:
            p.close()


def hook_config_path(environ=None) -> Path:
    env = os.environ if environ is None else environ
    default = Path(env.get(E.SAGEMAKER_BASE_DIR, E.DEFAULT_BASE_DIR)) / "input" / "config" / "debughookconfig.json"
    return Path(env.get(E.SMDEBUG_CONFIG_FILE_PATH) or default)


def _client_hook_config(env) -> tuple[Path, Path] | None:
    """Write `$DOGBREED_HOOK_CONFIG` to a file smdebug can read; (file, tensors folder) or None."""
    import tempfile

    doc = json.loads(env[DOGBREED_HOOK_CONFIG])
    numbered = sorted((int(k.removeprefix(DOGBREED_HOOK_COLLECTION)), json.loads(v)) for k, v in env.items()
                      if k.startswith(DOGBREED_HOOK_COLLECTION))
    doc.setdefault("CollectionConfigurations", []).extend(c for _, c in numbered)
    tensors = Path(doc["LocalPath"])  # KeyError before any folder exists
    folder = Path(tempfile.mkdtemp(prefix="dogbreed-hook-"))
    try:
        (folder / "debughookconfig.json").write_text(json.dumps({"HookParameters": {}, "S3OutputPath": "", **doc}))
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / "debughookconfig.json", tensors


def load_debugger_hook(environ=None, warn=None) -> DebuggerHook | None:
    """The smdebug hook when a hook config exists; None (with one line said) when smdebug is
    missing, so training goes on without it."""
    env = os.environ if environ is None else environ
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = hook_config_path(environ)
    if path.is_file() or not env.get(DOGBREED_HOOK_CONFIG):
        return _hook_from(path, None, warn)
    try:
        path, end_marker_dir = _client_hook_config(env)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        warn(f"debugger: ${DOGBREED_HOOK_CONFIG} is not a usable hook config ({exc}); "
             "training without the debugger hook")
        return None
    try:
        return _hook_from(path, end_marker_dir, warn)
    finally:  # smdebug has read our copy of the config by now
        shutil.rmtree(path.parent, ignore_errors=True)


def _hook_from(path: Path, end_marker_dir: Path | None, warn) -> DebuggerHook | None:
    if not path.is_file():
        return None
    try:
        import smdebug.pytorch as smd
        from smdebug.core.modes import ModeKeys
    except ImportError as exc:  # also protobuf/numpy incompatibilities surface as ImportError
        warn(f"debugger: smdebug is not importable ({exc}); training without the debugger hook")
        return None
    from dogbreed.training import smdebug_compat

    smdebug_compat.apply()  # smdebug's writer on numpy >= 2.3
    hook = smd.get_hook(json_config_path=str(path), create_if_not_exists=True)
    if hook is None:
        warn(f"debugger: smdebug found no usable hook config at {path}; training without the debugger hook")
        return None
    return DebuggerHook(hook, ModeKeys, end_marker_dir)


def make_instrumentation(args, environ=None) -> NullInstrumentation:
    """The instrumentation a script asked for (debugger hook, profiler); null when off."""
    env = os.environ if environ is None else environ
    parts: list[NullInstrumentation] = []
    if getattr(args, "debugger", False):
        hook = load_debugger_hook(env)
        if hook is not None:
            parts.append(hook)
    profile_dir = env.get(E.DOGBREED_PROFILE_DIR)
    rank = int(env.get("RANK", "0") or 0)
    if getattr(args, "profiler", False) and profile_dir:
        parts.append(StepRecorder(Path(profile_dir), rank=rank))
    if getattr(args, "profiler", False) and env.get(DOGBREED_SYSTEM_MONITOR) and rank == 0:
        try:
            monitor = json.loads(env[DOGBREED_SYSTEM_MONITOR])
            parts.append(SystemMonitor(Path(monitor["dir"]), int(monitor["interval_ms"]) / 1000))
        except (ValueError, KeyError, TypeError) as exc:
            print(f"profiler: ${DOGBREED_SYSTEM_MONITOR} is not usable ({exc}); no system metrics", file=sys.stderr)
    if not parts:
        return NullInstrumentation()
    return parts[0] if len(parts) == 1 else Composite(parts)
