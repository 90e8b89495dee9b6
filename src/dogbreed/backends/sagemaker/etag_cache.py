"""The ETags of local files, remembered between uploads so that an unchanged file is not hashed again.

A hint, never a proof: `data upload` still skips a file only when the ETag S3 lists for its object
equals the one remembered (or computed) for the local bytes. An entry counts only while the file's
size, mtime, ctime and inode are the ones seen when it was hashed: every write changes ctime, even when
a tool then resets mtime, and ctime cannot be set back. A file changed less than RACY_NS before it was
looked at is not remembered: a second write within the same timestamp tick would leave its stamp as it
was (git's "racily clean" entries).

One small JSON file per dataset folder (`<workspace>/cache/upload/<hash of the folder's path>.json`),
replaced atomically; a file that cannot be read, or holds anything unexpected, is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

RACY_NS = 2_000_000_000
VERSION = 1

Stamp = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def stamp_of(st: os.stat_result) -> Stamp:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def now_ns() -> int:
    return time.time_ns()


class EtagCache:
    """rel path -> (stamp, ETag as S3 computes it for `part_size`) for the dataset folder `root`."""

    def __init__(self, cache_dir: str | Path | None, root: str | Path, part_size: int):
        self.root, self.part_size = str(Path(root).resolve()), part_size
        self.path = None if cache_dir is None else \
            Path(cache_dir) / f"{hashlib.sha256(self.root.encode()).hexdigest()[:24]}.json"
        self.old = self._load()
        self.new: dict[str, tuple[Stamp, str]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, tuple[Stamp, str]]:
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_bytes())
            if (doc["version"], doc["root"], doc["part_size"]) != (VERSION, self.root, self.part_size):
                return {}
            entries = {}
            for rel, (size, mtime, ctime, ino, etag) in doc["files"].items():
                if not all(type(v) is int for v in (size, mtime, ctime, ino)) or type(etag) is not str:
                    return {}
                entries[rel] = ((size, mtime, ctime, ino), etag)
            return entries
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # missing, corrupt, foreign: start over
            return {}

    def get(self, rel: str, stamp: Stamp) -> str | None:
        entry = self.old.get(rel)
        return entry[1] if entry is not None and entry[0] == stamp else None

    def put(self, rel: str, stamp: Stamp, etag: str, seen_ns: int) -> None:
        """Remember `etag` for the bytes the file held when `stamp` was taken (at `seen_ns`)."""
        if seen_ns - max(stamp[1], stamp[2]) > RACY_NS:
            with self._lock:
                self.new[rel] = (stamp, etag)

    def save(self, current: dict[str, Stamp]) -> None:
        """Write the entries still valid for the files as scanned (`rel -> stamp`); a failure costs only
        hashing next time."""
        if self.path is None:
            return
        with self._lock:
            keep = {rel: e for rel, e in self.old.items() if current.get(rel) == e[0]}
            keep.update((rel, e) for rel, e in self.new.items() if rel in current)
        if keep == self.old:
            return
        doc = {"version": VERSION, "root": self.root, "part_size": self.part_size,
               "files": {rel: [*stamp, etag] for rel, (stamp, etag) in sorted(keep.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(doc, fh, separators=(",", ":"))
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            pass
