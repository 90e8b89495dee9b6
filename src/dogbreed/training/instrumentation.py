"""Where the debugger hook and the profiler attach to the training loop.

The loop calls these methods unconditionally; when instrumentation is off a null object
stands in, so the loop has no branches for it (nanoGPT's nullcontext habit).
"""

from __future__ import annotations


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


def make_instrumentation(args) -> NullInstrumentation:
    """The instrumentation a script asked for (debugger hook, profiler); null when off."""
    return NullInstrumentation()
