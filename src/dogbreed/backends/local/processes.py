"""Is a recorded process still ours and alive? Shared by jobs, tuning and endpoints."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None, cmdline_contains: str | None = None) -> bool:
    """True for a live, non-zombie process with this pid. With `cmdline_contains`, its command
    line must also contain that text, which guards against a recycled pid."""
    if not pid:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and (cmdline_contains is None or cmdline_contains in cmdline)
    if Path("/proc/self").is_dir():  # procfs present and no entry: gone
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
