"""Shell completion of job and endpoint names (`shell_complete` callbacks).

They run on every Tab press: they read folder names of the local workspace only, no job.json,
no torch, no AWS call. Enable completion with `eval "$(_DOGBREED_COMPLETE=bash_source dogbreed)"`.
"""

from __future__ import annotations


def _names(*folders: str) -> list[str]:
    from dogbreed.workspace import Workspace

    root = Workspace.resolve().root
    out: set[str] = set()
    for folder in folders:
        try:
            out.update(p.name for p in (root / folder).iterdir() if p.is_dir())
        except OSError:
            continue
    return sorted(out)


def _items(names: list[str], incomplete: str):
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_jobs(ctx, param, incomplete: str):
    """Training and tuning jobs of the local workspace."""
    return _items(_names("jobs", "tuning"), incomplete)


def complete_training_jobs(ctx, param, incomplete: str):
    return _items(_names("jobs"), incomplete)


def complete_endpoints(ctx, param, incomplete: str):
    return _items(_names("endpoints"), incomplete)
