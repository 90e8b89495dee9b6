"""A frozen network's CPU forward pass through oneDNN Graph: traced once, its weights frozen
into the graph and its convolutions fused with what follows them (bias, ReLU, the residual add).

Eager PyTorch re-lays-out every convolution's weights for oneDNN on every call; the fused graph
does it once. ResNet50, BatchNorm folded, bf16 + channels_last, 2 vCPUs (AVX512-BF16), batch 8:
~80 img/s eager, ~200 img/s fused; fp32 ~33 -> ~39 img/s. The outputs are the same computation
in another order (bf16: 0.28% relative difference to eager bf16, which is itself 0.46% from fp32).

`cpu_forward(module, precision, example)` returns the callable to run (its `.fused` says which):
the fused graph when it traces, and agrees with eager on `example` within `TOLERANCE`, else eager PyTorch under the
precision's autocast. TorchScript is in maintenance in this PyTorch (torch.compile is its
successor, but its cold compile, ~14 s for ResNet50 here, costs more than a feature cache saves);
any failure falls back to eager. $DOGBREED_FUSED_FORWARD=off turns it off.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Callable

ENV_SWITCH = "DOGBREED_FUSED_FORWARD"
TOLERANCE = 0.02  # |fused - eager| / |eager| on the example batch


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "on").lower() not in ("off", "0", "false", "no")


@contextlib.contextmanager
def onednn_fusion():
    """oneDNN Graph fusion on while the fused graph is optimised (its first calls at each input
    shape); the previous setting restored after."""
    import torch

    before = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)
    try:
        yield
    finally:
        torch.jit.enable_onednn_fusion(before)


def eager_forward(module, precision) -> Callable:
    def forward(x):
        with precision.autocast():
            return module(x)

    forward.fused = False
    return forward


def cpu_forward(module, precision, example) -> Callable:
    """The forward to run `module` (eval mode, frozen, prepared by `Precision.prepare_frozen`) on
    inputs like `example` (already through `precision.prepare_input`): fused on CPU where it
    traces and agrees with eager, else eager. Each new input shape costs the fused graph two
    slower calls (profiling, then fusion)."""
    eager = eager_forward(module, precision)
    if precision.device_type != "cpu" or not enabled():
        return eager
    import torch

    low = getattr(torch, precision.dtype) if precision.dtype else None

    def cast(x):
        return x.to(low) if low is not None else x

    try:
        with torch.no_grad(), onednn_fusion(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice
            graph = torch.jit.freeze(torch.jit.trace(module, cast(example), check_trace=False).eval())
            for _ in range(2):  # the profiling runs that trigger the fusion
                fused = graph(cast(example))
            expected = eager(example)
        error = ((fused.float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-12)).item()
        if not error <= TOLERANCE:
            return eager
    except Exception:
        return eager

    def forward(x):
        with torch.no_grad(), onednn_fusion():
            return graph(cast(x))

    forward.fused = True
    return forward
