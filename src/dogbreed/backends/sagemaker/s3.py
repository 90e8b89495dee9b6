"""Dataset upload to S3: parallel, resumable, and never the same bytes twice.

Every object we write carries its content MD5 in user metadata (`x-amz-meta-dogbreed-md5`).
Before uploading, the prefix is listed once: a file is skipped when an object with the same
size exists and its checksum matches (the ETag is the MD5 for single-part uploads without
KMS; otherwise the metadata is read with HEAD). A PUT is atomic, so an interrupted run leaves
only complete objects behind and the next run uploads exactly what is missing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dogbreed.errors import ConfigError, DataError, DogbreedError

MD5_META = "dogbreed-md5"
MULTIPART_THRESHOLD = 64 * 1024 * 1024  # dog photos are far smaller: one PUT each, ETag == MD5
DEFAULT_CONCURRENCY = 16
EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                "InvalidToken"}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class UploadError(DogbreedError):
    """Raised when an upload stops part-way; what was uploaded stays and a re-run skips it."""


def check_bucket_name(name: str) -> str:
    """S3's naming rules, checked before any request so a typo gets a precise message."""
    if name.startswith("s3://"):
        raise ConfigError(f"bucket {name!r}: give the bucket name only (e.g. my-bucket), not an s3:// URI")
    try:
        ipaddress.ip_address(name)
        is_ip = True
    except ValueError:
        is_ip = False
    if not _BUCKET.match(name) or ".." in name or is_ip:
        raise ConfigError(f"invalid S3 bucket name {name!r}: use 3-63 lowercase letters, digits, dots and hyphens, "
                          "starting and ending with a letter or digit")
    return name


def normalize_prefix(prefix: str) -> str:
    """'data/dogs/', '/data/dogs' and 'data//dogs' all mean the key prefix 'data/dogs'."""
    if prefix.startswith("s3://"):
        raise ConfigError(f"prefix {prefix!r}: give the key prefix only (e.g. data/dogImages); "
                          "the bucket comes from --bucket or the config")
    return "/".join(part for part in prefix.strip().split("/") if part)


def is_expired(exc: BaseException) -> bool:
    import botocore.exceptions as be

    if isinstance(exc, (be.TokenRetrievalError, be.UnauthorizedSSOTokenError)):
        return True
    return isinstance(exc, be.ClientError) and exc.response.get("Error", {}).get("Code") in EXPIRED_CODES


EXPIRED_HINT = ("the AWS session token has expired: refresh your credentials (`aws sso login --profile NAME`, "
                "or new temporary keys) and run the command again")


def aws_error(exc: Exception, doing: str, bucket: str) -> DogbreedError:
    """A ClientError/credential error as one line that says what to do."""
    import botocore.exceptions as be

    if is_expired(exc):
        return ConfigError(f"{doing}: {EXPIRED_HINT}")
    if isinstance(exc, be.NoCredentialsError):
        return ConfigError(f"{doing}: no AWS credentials found: run `aws configure --profile NAME` "
                           "(and set AWS_PROFILE), or use --backend local")
    if isinstance(exc, be.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            return ConfigError(f"{doing}: bucket {bucket!r} does not exist: create it with `aws s3 mb s3://{bucket}`, "
                               "or leave --bucket unset to use the SageMaker default bucket")
        if code in DENIED_CODES:
            return ConfigError(f"{doing}: access to bucket {bucket!r} denied ({code}): check the profile's "
                               "S3 permissions, or choose another --bucket")
        return ConfigError(f"{doing}: {code or 'error'}: {exc}")
    return ConfigError(f"{doing}: {exc}")


def check_bucket(client, bucket: str, region: str) -> None:
    """The bucket exists, we may use it, and it lies in the session's region (SageMaker needs that)."""
    import botocore.exceptions as be

    try:
        resp = client.head_bucket(Bucket=bucket)
        found = resp.get("BucketRegion") or resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    except be.ClientError as exc:
        found = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
        if exc.response.get("Error", {}).get("Code") not in ("301", "PermanentRedirect") or not found:
            raise aws_error(exc, f"checking bucket {bucket!r}", bucket) from None
    except be.BotoCoreError as exc:
        raise aws_error(exc, f"checking bucket {bucket!r}", bucket) from None
    if found and found != region:
        raise ConfigError(f"bucket {bucket!r} is in {found}, but the session region is {region}: SageMaker reads "
                          f"data only from its own region; pass --region {found}, or a bucket in {region}")


@dataclass(frozen=True)
class LocalFile:
    rel: str  # POSIX path relative to the dataset root
    path: Path
    size: int


def scan(root: str | Path) -> list[LocalFile]:
    """Every regular, non-hidden file under `root`, sorted."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset path {root} does not exist; create one with `dogbreed data synth` "
                        "or `dogbreed data download`, or pass the right folder")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder; pass the folder that holds train/ valid/ test/")
    if not any((root / split).is_dir() for split in ("train", "valid", "test")):
        raise DataError(f"{root} holds no train/ valid/ test/ folders; pass the dogImages folder itself")
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not path.is_symlink() and not any(p.startswith(".") for p in rel.parts):
            files.append(LocalFile(rel.as_posix(), path, path.stat().st_size))
    if not files:
        raise DataError(f"{root} holds no files to upload")
    return files


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_objects(client, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag without quotes) for everything under `prefix/`."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/" if prefix else ""):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
    return out


@dataclass
class UploadResult:
    uri: str
    total: int
    uploaded: list[str] = field(default_factory=list)
    skipped: int = 0
    bytes_uploaded: int = 0


@dataclass
class _Plan:
    todo: list[tuple[LocalFile, str, str]]  # (file, key, md5)
    skipped: int


def plan_upload(client, bucket: str, prefix: str, files: list[LocalFile], concurrency: int) -> _Plan:
    remote = list_objects(client, bucket, prefix)
    key_of = {f.rel: f"{prefix}/{f.rel}" if prefix else f.rel for f in files}
    with ThreadPoolExecutor(concurrency) as pool:
        sums = dict(zip((f.rel for f in files), pool.map(lambda f: md5_file(f.path), files)))
        # Same size but an ETag that is not a plain MD5 (multipart, SSE-KMS): ask the metadata.
        unsure = [f for f in files if key_of[f.rel] in remote and remote[key_of[f.rel]][0] == f.size
                  and remote[key_of[f.rel]][1] != sums[f.rel]]
        meta = dict(zip((f.rel for f in unsure), pool.map(
            lambda f: client.head_object(Bucket=bucket, Key=key_of[f.rel]).get("Metadata", {}).get(MD5_META), unsure)))
    todo, skipped = [], 0
    for f in files:
        size, etag = remote.get(key_of[f.rel], (None, None))
        if size == f.size and (etag == sums[f.rel] or meta.get(f.rel) == sums[f.rel]):
            skipped += 1
        else:
            todo.append((f, key_of[f.rel], sums[f.rel]))
    return _Plan(todo, skipped)


def s3_client(boto_session, concurrency: int):
    from botocore.config import Config

    return boto_session.client("s3", config=Config(max_pool_connections=concurrency + 4,
                                                   retries={"mode": "standard", "max_attempts": 5}))


def upload_dataset(boto_session, bucket: str, region: str, path: str | Path, prefix: str, *,
                   concurrency: int = DEFAULT_CONCURRENCY, on_plan: Callable[[int, int, int], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> UploadResult:
    """Mirror the dataset folder `path` to s3://bucket/prefix/, uploading only what is missing or changed.

    `on_plan(to_upload, skipped, bytes_to_upload)` is called once before the first PUT;
    `progress(n_bytes)` as bytes go out (from worker threads).
    """
    import botocore.exceptions as be

    check_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    files = scan(path)
    client = s3_client(boto_session, concurrency)
    check_bucket(client, bucket, region)
    uri = f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"
    try:
        plan = plan_upload(client, bucket, prefix, files, concurrency)
    except (be.ClientError, be.BotoCoreError) as exc:
        raise aws_error(exc, f"listing {uri}", bucket) from None
    result = UploadResult(uri=uri, total=len(files), skipped=plan.skipped)
    if on_plan:
        on_plan(len(plan.todo), plan.skipped, sum(f.size for f, _, _ in plan.todo))
    if plan.todo:
        _transfer(client, bucket, plan.todo, concurrency, progress, result)
    return result


def _transfer(client, bucket, todo, concurrency, progress, result: UploadResult) -> None:
    from boto3.s3.transfer import TransferConfig, create_transfer_manager
    from s3transfer.subscribers import BaseSubscriber

    lock, finished = threading.Condition(), {"n": 0}
    # A bounded window of submitted uploads: after a failure only the few in flight finish,
    # and each of them is counted exactly (no cancelling of PUTs that may already have landed).
    window = threading.Semaphore(2 * concurrency)
    failures: list[tuple[str, BaseException]] = []

    class Subscriber(BaseSubscriber):
        def __init__(self, file: LocalFile):
            self.file = file

        def on_progress(self, future, bytes_transferred, **kwargs):
            if progress:
                progress(bytes_transferred)

        def on_done(self, future, **kwargs):
            try:
                future.result()
                error = None
            except BaseException as exc:  # noqa: BLE001 - reported below, per file
                error = exc
            with lock:
                if error is None:
                    result.uploaded.append(self.file.rel)
                    result.bytes_uploaded += self.file.size
                elif not _is_cancel(error):
                    failures.append((self.file.rel, error))
                finished["n"] += 1
                lock.notify_all()
            window.release()

    config = TransferConfig(max_concurrency=concurrency, multipart_threshold=MULTIPART_THRESHOLD)
    manager = create_transfer_manager(client, config)
    futures = []
    try:
        for file, key, md5 in todo:
            window.acquire()
            if failures:  # stop feeding work after the first failure (expired token, denied...)
                break
            futures.append(manager.upload(str(file.path), bucket, key, extra_args={"Metadata": {MD5_META: md5}},
                                          subscribers=[Subscriber(file)]))
        with lock:
            lock.wait_for(lambda: finished["n"] >= len(futures))
    except KeyboardInterrupt:
        _cancel(futures)
        manager.shutdown()
        raise UploadError(f"interrupted: {_progress_note(result)}") from None
    manager.shutdown()
    if failures:
        rel, exc = failures[0]
        reason = EXPIRED_HINT if is_expired(exc) else str(aws_error(exc, f"uploading {rel}", bucket))
        raise UploadError(f"upload stopped: {reason}. {_progress_note(result)}")


def _cancel(futures) -> None:
    # TransferManager.shutdown(cancel=True) mis-passes its arguments in s3transfer 0.1x: cancel each future.
    for future in futures:
        if not future.done():
            future.cancel()


def _is_cancel(exc: BaseException) -> bool:
    from s3transfer.exceptions import CancelledError, FatalError

    return isinstance(exc, (CancelledError, FatalError))


def _progress_note(result: UploadResult) -> str:
    done = result.skipped + len(result.uploaded)
    return (f"{done} of {result.total} files are in {result.uri} ({len(result.uploaded)} uploaded now) and are kept; "
            "re-running `dogbreed data upload` uploads only the rest")
