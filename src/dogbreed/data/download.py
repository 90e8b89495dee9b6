"""`dogbreed data download`: the real dogImages.zip, streamed, resumable, verified, extracted safely.

The archive is written to `<dest>/dogImages.zip.part` and resumed with an HTTP Range
request after an interruption; it is renamed only once its size matches the server's
Content-Length and the zip's CRCs check out. Extraction refuses members that would land
outside the destination (absolute paths, `..`, links).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable

from dogbreed.errors import DataError, DownloadError

DOG_IMAGES_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
CHUNK = 1 << 20


def fetch(url: str, dest: Path, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 30.0) -> Path:
    """Download `url` to `dest`, resuming a previous `.part` file. Returns `dest`."""
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = requests.get(url, stream=True, timeout=timeout, headers=headers)
    except requests.RequestException as exc:
        raise DownloadError(
            f"cannot reach {url.split('/')[2]} ({type(exc).__name__}); check the network, or work offline "
            f"with `dogbreed data synth --out data/sample`"
        ) from None
    with resp:
        if resp.status_code == 416:  # range past the end: the .part is already complete
            total = have
        elif resp.status_code not in (200, 206):
            raise DownloadError(f"download of {url} failed: HTTP {resp.status_code}")
        else:
            if resp.status_code == 200:  # server ignored the range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length else None
            mode = "ab" if have else "wb"
            with open(part, mode) as fh:
                done = have
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"download incomplete: {size} of {total} bytes; run the command again to resume")
    os.replace(part, dest)
    return dest


def verify_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path} is not a valid zip ({exc}); it was removed, run the command again") from None
    if bad:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{path} is corrupt (bad CRC in {bad}); it was removed, run the command again")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip, rejecting members that escape `dest` or are symlinks."""
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if is_link or not (target == dest or dest in target.parents):
                raise DataError(f"refusing to extract {info.filename!r} from {archive}: it points outside {dest}")
        zf.extractall(dest)


def download_dog_images(dest: str | Path, url: str = DOG_IMAGES_URL, progress=None, keep_zip: bool = False) -> Path:
    """Download and extract dogImages into `dest`; returns the dataset root (with train/)."""
    dest = Path(dest)
    root = dest / "dogImages"
    if (root / "train").is_dir() and (root / ".complete").exists():
        return root
    archive = dest / "dogImages.zip"
    if not archive.exists():
        fetch(url, archive, progress)
    verify_zip(archive)
    safe_extract(archive, dest)
    if not (root / "train").is_dir():
        raise DataError(f"{archive} did not contain dogImages/train; remove it and download again")
    (root / ".complete").write_text(url + "\n")
    if not keep_zip:
        archive.unlink()
    return root
