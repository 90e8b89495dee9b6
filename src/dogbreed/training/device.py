"""Device and precision policy.

CUDA -> fp16/bf16 autocast (AMP) with a GradScaler for fp16. CPU with native bf16 (AMX or
AVX512-BF16) -> bf16 autocast + channels_last (measured ~6x fp32 for ResNet50 on this
project's CI-class CPU). Otherwise fp32. Disabled features become no-op contexts so the
loops carry no branches for them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache

from dogbreed.errors import ConfigError


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return "amx_bf16" in flags.split() or "avx512_bf16" in flags.split()


@dataclass(frozen=True)
class Precision:
    device: str  # "cpu" | "cuda" | "cuda:N"
    dtype: str | None  # autocast dtype name, None = fp32
    channels_last: bool

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def autocast(self):
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=getattr(torch, self.dtype))

    def grad_scaler(self):
        import torch

        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == "float16")

    def prepare_model(self, model):
        import torch

        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_frozen(self, model):
        """`prepare_model` for a network that only runs forward (serving, the feature cache), with the
        weights autocast computes in low precision (convolutions, linear layers) stored in it. Autocast
        keeps a cast weight only while it requires grad, so a frozen fp32 network had every such weight
        cast again on each call (ResNet50 bf16, 2 vCPUs: batch 1 18.6 -> 16.9 ms, batch 8 100.5 ->
        97.7 ms). Under autocast the outputs are the same bit for bit; run it only under autocast."""
        model = self.prepare_model(model)
        if self.dtype is not None:
            import torch

            low = getattr(torch, self.dtype)
            for layer in model.modules():
                if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)):
                    layer.to(low)
        return model

    def prepare_input(self, x):
        import torch

        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> str:
        return f"{self.device} {self.dtype or 'float32'}{' channels_last' if self.channels_last else ''}"


def forward_fills_the_cpu(device_type: str) -> bool:
    """A CPU forward pass whose OpenMP team has a thread on every core. Decoding beside it then
    costs the forward more than the decoding's own CPU time (a decoder pre-empts one team thread
    and the rest spin at the next barrier): decode between forward passes instead."""
    import torch

    return device_type == "cpu" and (os.cpu_count() or 1) <= torch.get_num_threads()


# libgomp's threads spin after every parallel region before they sleep (GOMP_SPINCOUNT, 300,000
# by default: milliseconds on this CPU). A server that decodes the next requests between forward
# passes decodes beside that spinning; 30,000 still spans the gaps between one forward's regions.
# Forward pass of 8 + decoding 8 photos after it (resnet50 bf16, 2 vCPUs, 12 alternating pairs):
# 30,000 faster in 10 of 12, median +3.7%; decoding after the forward 10-11 ms instead of 16.
SERVING_SPINCOUNT = "30000"


def shorten_openmp_spin(environ=os.environ) -> None:
    """For a process that decodes between forward passes: call before torch is imported (libgomp
    reads the variable when it loads); a value the user set wins."""
    environ.setdefault("GOMP_SPINCOUNT", SERVING_SPINCOUNT)


def select_precision(device: str = "auto", mixed: str = "auto", local_rank: int = 0) -> Precision:
    """`device`: auto|cpu|cuda; `mixed`: auto|on|off (bf16 on CPU, AMP on CUDA)."""
    import torch

    if mixed not in ("auto", "on", "off"):
        raise ConfigError(f"--mixed-precision must be auto, on or off, not {mixed!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda asked for but no CUDA device is visible; use --device cpu")
        device = f"cuda:{local_rank}" if device == "cuda" else device
        if mixed == "off":
            return Precision(device, None, False)
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return Precision(device, dtype, True)
    if device != "cpu":
        raise ConfigError(f"--device must be auto, cpu or cuda, not {device!r}")
    use_bf16 = mixed == "on" or (mixed == "auto" and cpu_has_fast_bf16())
    return Precision("cpu", "bfloat16" if use_bf16 else None, use_bf16)
