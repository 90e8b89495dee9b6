"""Atomic saves: a reader never sees half a file, and no partial file outlives its writer."""

import os
import subprocess
import sys

import pytest

from dogbreed.training.files import torch_save_atomic


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_failed_save_keeps_the_old_file_and_leaves_no_partial_one(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch_save_atomic({"epoch": 1}, path)
    old = path.read_bytes()
    with pytest.raises(Exception):
        torch_save_atomic({"epoch": 2, "unpicklable": lambda: None}, path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth"]


def test_the_next_save_removes_the_partial_file_of_a_killed_writer_only(tmp_path):
    path = tmp_path / "checkpoint.pth"
    killed = tmp_path / f".checkpoint.pth.{dead_pid()}.tmp"
    writing = tmp_path / f".checkpoint.pth.{os.getppid()}.tmp"  # a live process, still writing
    other = tmp_path / f".best.pth.{dead_pid()}.tmp"  # another file's: left to that file's next save
    for f in (killed, writing, other):
        f.write_bytes(b"partial")
    torch_save_atomic({"epoch": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, writing.name, other.name])
