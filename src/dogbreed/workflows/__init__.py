"""Workflows: the decisions between a command and a backend.

A command parses its flags, calls one function here and prints what comes back. A workflow
decides (which hyperparameters, which dataset, which backend a recorded name belongs to), keeps
the workspace's bookkeeping, and reaches jobs and endpoints only through `Backend`.

Every workflow takes a `Session` (the CLI's `App` is one): the workspace, the resolved
settings, and the backends by name.
"""

from __future__ import annotations

from typing import Protocol

from dogbreed.backends.base import Backend
from dogbreed.workspace import Workspace


class Session(Protocol):
    workspace: Workspace
    settings: object  # dogbreed.settings.Settings

    def backend(self, name: str | None = None) -> Backend:
        """The backend called `name` (a recorded one), or the chosen one."""

    def backend_with(self, capability: str) -> Backend:
        """The chosen backend if it has `capability` (see backends.base.OPTIONAL), else one that has it."""
