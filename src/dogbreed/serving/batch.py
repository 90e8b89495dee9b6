"""Offline bulk scoring: every image in a folder -> one JSON Lines file, no server.

The same handler functions as the endpoint (`handler.model_fn`, `input_fn` with the eval
preset, `predict_fn`, `top_k`), so each line holds what `predict --json` prints for that image.
Decoding runs in a thread pool (PIL and numpy release the GIL; the forward stays on this thread,
keeping one OpenMP thread team, see serving/app.py). When the model has cores to itself (CUDA, or
more CPUs than torch's intra-op threads) the pool decodes a few batches ahead, next to the
forward pass. When the CPU forward pass already uses every core, the pool decodes the next batch
on all cores *between* forward passes instead: a decode thread running next to the forward
pre-empts one of its OpenMP threads and the whole parallel region waits for it at the next
barrier, so on 2 cores overlapping cost ~2x the decoding time.

Resumable: lines go to `<out>.partial` as each batch finishes (flushed); a rerun after an
interruption skips the images already there, and the finished file is renamed to `<out>`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dogbreed.errors import ConfigError, DataError
from dogbreed.serving.limits import IMAGE_SUFFIXES, default_batch_size
from dogbreed.training.device import forward_fills_the_cpu

PREFETCH_BATCHES = 2  # batches decoded ahead of the forward pass
PARTIAL = ".partial"
RESUME_INFO = ".resume.json"  # what the partial output was started with


def list_images(source: str | Path) -> list[Path]:
    """Image files under `source` (recursive, sorted); DataError when there is nothing to score."""
    src = Path(source).expanduser()
    if not src.exists():
        raise DataError(f"{src} does not exist: pass a folder of images")
    if not src.is_dir():
        raise DataError(f"{src} is not a folder: pass the folder that holds the images")
    if not os.access(src, os.R_OK | os.X_OK):
        raise DataError(f"cannot read folder {src} (permission denied): fix its permissions or pass another folder")
    files = sorted(f for f in src.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
    return files


@dataclass
class Output:
    """The JSON Lines destination: `path` when finished, `path.partial` while scoring."""

    path: Path

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + PARTIAL)

    @property
    def info(self) -> Path:
        return self.path.with_name(self.path.name + RESUME_INFO)

    def check(self) -> None:
        if self.path.exists():
            raise ConfigError(f"{self.path} already exists: pass another --out, or delete it to score again")
        if not self.path.parent.is_dir():
            raise ConfigError(f"folder {self.path.parent} does not exist: create it or pass another --out")

    def resume(self, settings: dict) -> set[str]:
        """Images already scored by an interrupted run with the same settings (a torn last line is dropped)."""
        if not self.partial.exists():
            return set()
        try:
            started = json.loads(self.info.read_text())
        except (OSError, ValueError):
            started = None
        if started != settings:
            raise ConfigError(f"{self.partial} was started with other settings ({started}): rerun with those, "
                              "or delete it to start over")
        raw = self.partial.read_bytes()
        keep = raw[:raw.rfind(b"\n") + 1]  # a line cut by the interruption is scored again
        if len(keep) != len(raw):
            self.partial.write_bytes(keep)
        return {json.loads(line)["image"] for line in keep.splitlines() if line.strip()}

    @contextlib.contextmanager
    def locked(self):
        """One run per output at a time: a second one would append to the same partial file."""
        import fcntl

        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another `dogbreed batch` is writing {self.partial}: wait for it to finish, "
                              "or stop it first") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            os.close(fd)

    def open(self, settings: dict):
        self.info.write_text(json.dumps(settings))
        return open(self.partial, "a", encoding="utf-8")

    def finish(self) -> None:
        os.replace(self.partial, self.path)
        self.info.unlink(missing_ok=True)


def score_folder(model_dir: str | Path, source: str | Path, out: str | Path, *, top_k: int = 5,
                 batch_size: int | None = None, workers: int | None = None, model_name: str = "",
                 progress=None) -> dict:
    """Score every image under `source` into JSON Lines `out`; returns counts.

    `progress(done, total)` is called after each batch (done includes resumed images); `batch_size`
    None picks the device's (limits.default_batch_size)."""
    files = list_images(source)
    root = Path(source).expanduser()
    output = Output(Path(out).expanduser())
    output.check()
    with output.locked():
        return _score_into(output, files, root, model_dir, model_name, top_k, batch_size, workers, progress)


def _score_into(output: Output, files: list[Path], root: Path, model_dir, model_name: str, top_k: int,
                batch_size: int | None, workers: int | None, progress) -> dict:
    settings = {"source": str(root.resolve()), "model": model_name, "top_k": top_k}
    done = output.resume(settings)
    todo = [f for f in files if f.relative_to(root).as_posix() not in done]
    resumed = len(files) - len(todo)
    scored = failed = 0
    seconds = 0.0
    if progress:
        progress(resumed, len(files))
    if todo:
        from dogbreed.serving import handler

        loaded = handler.model_fn(str(model_dir))
        started = time.perf_counter()  # scoring time: the model's one-off load is not part of the rate
        with output.open(settings) as sink:
            for rows in score_batches(loaded, todo, root, top_k, batch_size, workers):
                sink.write("".join(json.dumps(r) + "\n" for r in rows))
                sink.flush()
                failed += sum("error" in r for r in rows)
                scored += sum("error" not in r for r in rows)
                if progress:
                    progress(resumed + scored + failed, len(files))
        seconds = time.perf_counter() - started
    output.finish()
    return {"total": len(files), "scored": scored, "failed": failed, "resumed": resumed, "seconds": seconds}


def decode_alongside(device_type: str) -> bool:
    """Whether decoding should run next to the forward pass: yes unless a CPU forward uses every core."""
    return not forward_fills_the_cpu(device_type)


def score_batches(loaded, files: list[Path], root: Path, k: int = 5, batch_size: int | None = None,
                  workers: int | None = None):
    """With a loaded model (handler.model_fn), yield one list of result rows per batch, in file order."""
    import torch

    overlap = decode_alongside(loaded.precision.device_type)
    batch_size = batch_size or default_batch_size(loaded.precision.device_type)
    workers = workers or (min(4, os.cpu_count() or 1) if overlap else os.cpu_count() or 1)
    ahead = PREFETCH_BATCHES if overlap else 0

    from dogbreed.serving import handler
    from dogbreed.serving.errors import RequestError

    def decode(path: Path):
        try:
            return handler.input_fn(path.read_bytes(), "application/x-image", transform=loaded.transform)
        except RequestError as exc:
            return str(exc)
        except OSError as exc:
            return f"cannot read the file ({exc.strerror or exc})"

    pending: deque = deque()
    names = iter(files)
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        def fill(batches: int):
            while len(pending) < batch_size * batches:
                path = next(names, None)
                if path is None:
                    return
                pending.append((path, pool.submit(decode, path)))

        fill(max(ahead, 1))
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            fill(ahead)  # overlapping: the pool decodes the next batches while this one runs through the model
            decoded = [(path.relative_to(root).as_posix(), future.result()) for path, future in batch]
            tensors = [x for _, x in decoded if not isinstance(x, str)]
            logits = handler.predict_fn(torch.cat(tensors), loaded) if tensors else None
            predictions = iter(handler.top_k(logits, loaded.breeds, k) if tensors else [])
            fill(1)  # not overlapping: the pool decodes the next batch now, between forward passes
            yield [{"image": name, "error": x} if isinstance(x, str) else {"image": name,
                                                                          "predictions": next(predictions)}
                   for name, x in decoded]
