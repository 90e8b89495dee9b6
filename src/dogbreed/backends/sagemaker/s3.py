"""Dataset upload to S3: parallel, resumable, verified, and never the same bytes twice.

Only what S3 itself reports proves an object intact. Each PUT carries the CRC32 of its body
(`x-amz-checksum-crc32`: S3 refuses a body that does not match it, with BadDigest, and stores it with
the object), and S3's answer must echo that CRC32; S3's ETag in that same answer is then the MD5 of
bytes it checked against ours, and is what we remember for the file. A store that does not echo the
CRC32 is checked the old way: its ETag must equal the MD5 of the body. Multipart: every part so, and
the final ETag must be the composite one (MD5 of the parts' MD5s + "-N"). A mismatch is retried,
then reported. Before uploading, the prefix is listed once: a file is skipped only when an object of
the same size has the ETag of the local file (its MD5, or composite), so a re-run repairs anything
else. CRC32 (ISA-L's) costs a fiftieth of MD5: a file sent to a store that echoes it is not MD5-hashed by us at all
(that was the one cost over a bare put_object pool). The ETags of unchanged files are remembered
between runs (`etag_cache`), so a re-run hashes only what changed. A PUT is atomic, so an interrupted
run leaves only complete objects behind and the next run uploads exactly what is missing.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dogbreed.backends.sagemaker.etag_cache import EtagCache, Stamp, now_ns, stamp_of
from dogbreed.data.check import dataset_files
from dogbreed.errors import ConfigError, DataError, DogbreedError

try:  # ISA-L's CRC32 (the same checksum): 4-5x zlib's on x86 and ARM, 21 -> 4.6 ms for 158 MB here
    from isal.isal_zlib import crc32
except ImportError:  # a platform without its wheel
    from zlib import crc32

PART_SIZE = 64 * 1024 * 1024  # larger files go multipart in parts of this size; dog photos are one PUT each
CHECKSUM_HEADER = "x-amz-checksum-crc32"  # what ChecksumCRC32= sends
EXPECT_ABOVE = 8 * 1024 * 1024  # PUT bodies up to this size are sent without waiting for `100 Continue`
DEFAULT_CONCURRENCY = 16
ATTEMPTS = 3  # sends of one file whose bytes S3 does not confirm, or that changes while being read
INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}  # S3 got other bytes than we sent
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
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
    stamp: Stamp  # as scanned: size, mtime_ns, ctime_ns, inode

    @property
    def size(self) -> int:
        return self.stamp[0]


def check_root(root: str | Path) -> Path:
    """The dataset folder, or the one-line error of what is wrong with it (before any request is sent)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"dataset path {root} does not exist; create one with `dogbreed data synth` "
                        "or `dogbreed data download`, or pass the right folder")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder; pass the folder that holds train/ valid/ test/")
    if not any((root / split).is_dir() for split in ("train", "valid", "test")):
        raise DataError(f"{root} holds no train/ valid/ test/ folders; pass the dogImages folder itself")
    return root


def scan(root: Path) -> list[LocalFile]:
    """Every non-hidden file under the checked `root` that `data check` and training see, sorted."""
    # the files training reads (symlinks followed, loops and dangling links skipped): `data check`'s rule
    files = [LocalFile(rel, path, stamp_of(path.stat())) for rel, path in dataset_files(root).files]
    if not files:
        raise DataError(f"{root} holds no files to upload")
    return files


def expected_etag(path: Path, size: int, part_size: int = PART_SIZE) -> str:
    """The ETag S3 gives this file as we upload it: its MD5, or past `part_size` (multipart in parts of
    `part_size`) the MD5 of the parts' MD5s followed by "-<number of parts>"."""
    with open(path, "rb") as fh:
        if size <= part_size:
            h = hashlib.md5(usedforsecurity=False)
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
            return h.hexdigest()
        digests = [_md5(chunk).digest() for chunk in iter(lambda: fh.read(part_size), b"")]
    return f"{_md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _md5(data: bytes):
    return hashlib.md5(data, usedforsecurity=False)


def list_objects(client, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, ETag without quotes) for everything under `prefix/`."""
    out, request = {}, {"Bucket": bucket, "Prefix": prefix + "/" if prefix else ""}
    while True:  # the paginator would first load its own model: a few ms on every run
        page = client.list_objects_v2(**request)
        for obj in page.get("Contents", []):
            out[obj["Key"]] = (obj["Size"], obj["ETag"].strip('"'))
        if not page.get("IsTruncated"):
            return out
        request["ContinuationToken"] = page["NextContinuationToken"]


@dataclass
class UploadResult:
    uri: str
    total: int
    uploaded: list[str] = field(default_factory=list)
    skipped: int = 0
    bytes_uploaded: int = 0


@dataclass
class _Plan:
    todo: list[tuple[LocalFile, str]]  # (file, key)
    skipped: int


def plan_upload(remote: dict[str, tuple[int, str]], prefix: str, files: list[LocalFile], concurrency: int,
                part_size: int, cache: EtagCache, scanned_ns: int) -> _Plan:
    """Skip a file only when S3 lists (`remote`) an object of its size whose ETag is the one of the local file.

    Only those candidates need the local ETag here: remembered in `cache` for an unchanged file, else
    computed (and remembered). Everything else is sent, and verified by its CRC32."""
    key_of = {f.rel: f"{prefix}/{f.rel}" if prefix else f.rel for f in files}
    candidates = [f for f in files if remote.get(key_of[f.rel], (None, ""))[0] == f.size]

    def intact(f: LocalFile) -> bool:
        etag = cache.get(f.rel, f.stamp)
        if etag is None:
            try:
                etag = expected_etag(f.path, f.size, part_size)
            except OSError:  # gone since the scan: the upload reports it
                return False
            cache.put(f.rel, f.stamp, etag, scanned_ns)  # the scan's stamp: any later write changes it
        return etag == remote[key_of[f.rel]][1]

    skip = set()
    if candidates:
        with ThreadPoolExecutor(concurrency) as pool:
            skip = {f.rel for f, ok in zip(candidates, pool.map(intact, candidates)) if ok}
    return _Plan([(f, key_of[f.rel]) for f in files if f.rel not in skip], len(skip))


def s3_client(boto_session, concurrency: int):
    from botocore.config import Config

    # We compute and send the CRC32 ourselves (the value S3 must echo): no second, SDK-computed checksum.
    client = boto_session.client("s3", config=Config(max_pool_connections=concurrency + 4,
                                                     retries={"mode": "standard", "max_attempts": 5},
                                                     request_checksum_calculation="when_required"))
    client.meta.events.register("before-sign.s3.PutObject", _send_small_bodies_at_once)
    for operation in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-sign.s3.{operation}", _declare_our_checksum)
    return client


def _send_small_bodies_at_once(request, **kwargs) -> None:
    """botocore asks S3 for a `100 Continue` before every PUT body: one more round trip per file. It
    only saves sending a large body that S3 refuses (expired token, denied), so keep it for those."""
    from botocore.utils import determine_content_length

    if "Expect" in request.headers and (determine_content_length(request.data) or 0) <= EXPECT_ABOVE:
        del request.headers["Expect"]


def _declare_our_checksum(request, **kwargs) -> None:
    """Tell botocore which header carries the body's checksum. It looks only for Content-MD5 or a
    checksum it computed itself, so with ours it also SHA-256-hashed every body into the signature;
    knowing, it applies its own rule: over TLS, a body whose checksum S3 validates is sent as
    UNSIGNED-PAYLOAD (the checksum header stays signed). Plain http still hashes every body."""
    if CHECKSUM_HEADER in request.headers:
        request.context.setdefault("checksum", {})["request_algorithm"] = {"in": "header", "name": CHECKSUM_HEADER}


def upload_dataset(boto_session, bucket: str, region: str, path: str | Path, prefix: str, *,
                   concurrency: int = DEFAULT_CONCURRENCY, part_size: int = PART_SIZE,
                   cache_dir: str | Path | None = None,
                   on_plan: Callable[[int, int, int], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> UploadResult:
    """Mirror the dataset folder `path` to s3://bucket/prefix/, uploading only what S3 does not hold intact.

    `cache_dir`: where the local files' ETags are remembered between runs (None: hash every file S3
    holds at the same size). `on_plan(to_upload, skipped, bytes_to_upload)` is called once before the
    first PUT; `progress(n_bytes)` as files (or parts) are confirmed, from worker threads.
    """
    import botocore.exceptions as be

    check_bucket_name(bucket)
    prefix = normalize_prefix(prefix)
    root = check_root(path)
    client = s3_client(boto_session, concurrency)
    uri = f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"
    with ThreadPoolExecutor(2) as background:  # the folder is walked during the one round trip of both
        checked = background.submit(check_bucket, client, bucket, region)
        listing = background.submit(list_objects, client, bucket, prefix)
        scanned_ns = now_ns()
        files = scan(root)
        checked.result()  # its error, if any, is the one to report
        try:
            remote = listing.result()
        except (be.ClientError, be.BotoCoreError) as exc:
            raise aws_error(exc, f"listing {uri}", bucket) from None
    cache = EtagCache(cache_dir, path, part_size)
    try:
        plan = plan_upload(remote, prefix, files, concurrency, part_size, cache, scanned_ns)
        result = UploadResult(uri=uri, total=len(files), skipped=plan.skipped)
        if on_plan:
            on_plan(len(plan.todo), plan.skipped, sum(f.size for f, _ in plan.todo))
        if plan.todo:
            _Sender(client, bucket, part_size, progress, result, cache).send_all(plan.todo, concurrency)
        return result
    finally:  # also after an error or an interruption: what was hashed need not be hashed again
        cache.save({f.rel: f.stamp for f in files})


class _Stopped(Exception):
    """Another worker hit a fatal error, or the user interrupted: leave this file for the re-run."""


def _stamp(path: Path) -> Stamp:
    return stamp_of(os.stat(path))


def _read(path: Path, limit: int) -> tuple[Stamp, bytes | None, bool]:
    """(stamp, bytes, unchanged while read) of a file, its bytes read whole through the one descriptor its
    stamp comes from; bytes None past `limit` (multipart reads it in parts). Half the system calls of a
    stat, `read_bytes` and a second stat: with 16 threads, each is a hand-over of the GIL."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        before = stamp_of(os.fstat(fd))
        if before[0] > limit:
            return before, None, True
        data = os.read(fd, before[0])
        while len(data) < before[0]:  # short reads (network file systems); any write shows in the stamp
            more = os.read(fd, before[0] - len(data))
            if not more:
                break
            data += more
        return before, data, len(data) == before[0] and stamp_of(os.fstat(fd)) == before
    finally:
        os.close(fd)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _crc32(data: bytes) -> str:
    return _b64(crc32(data).to_bytes(4, "big"))


def _encrypted(response: dict) -> bool:
    """Under SSE-KMS/SSE-C, S3's ETag is no MD5 of the bytes."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") or "SSECustomerAlgorithm" in response


def _confirm(response: dict, crc: str, body: bytes) -> tuple[bool, str]:
    """(S3's answer shows it stored exactly `body`, the MD5 S3 gives `body`, "" where its ETag is no MD5).

    An echoed CRC32 means S3 checked the body against the one we sent; its ETag is then the MD5 of what
    we sent. A store that ignores the CRC32 header (no echo) must show an ETag equal to the body's MD5."""
    etag = response.get("ETag", "").strip('"')
    md5_etag = "" if _encrypted(response) or not _MD5_ETAG.match(etag) else etag
    echoed = response.get("ChecksumCRC32")
    if echoed is not None:
        return echoed == crc, md5_etag
    ok = bool(md5_etag) and md5_etag == _md5(body).hexdigest()
    return ok, md5_etag if ok else ""


class _Sender:
    """Sends files from a thread pool; each counts as uploaded only once S3 confirmed its bytes."""

    def __init__(self, client, bucket: str, part_size: int, progress, result: UploadResult, cache: EtagCache):
        self.client, self.bucket, self.part_size = client, bucket, part_size
        self.progress, self.result, self.cache = progress, result, cache
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.fatal: tuple[str, BaseException] | None = None  # (file, expired token, denied...): stops every worker
        self.problems: list[tuple[str, str]] = []  # (file, why): this file only; the others go on

    def send_all(self, todo: list[tuple[LocalFile, str]], concurrency: int) -> None:
        """`concurrency` threads, each taking the next file from one queue until it is empty: no future,
        condition and lock per file, and nothing that competes with them for the GIL to hand out work."""
        queue, bugs = deque(todo), []

        def work() -> None:
            try:
                while not self.stop.is_set():
                    try:
                        file, key = queue.popleft()
                    except IndexError:
                        return
                    self.send(file, key)
            except BaseException as exc:  # a bug, not an AWS error: stop the others, surface it below
                bugs.append(exc)
                self.stop.set()

        workers = [threading.Thread(target=work, name=f"dogbreed-upload-{i}")
                   for i in range(min(concurrency, len(todo)))]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        except KeyboardInterrupt:
            self.stop.set()  # each worker finishes the file it is sending, then stops
            for worker in workers:
                if worker.ident is not None:
                    worker.join()
            raise UploadError(f"interrupted: {_progress_note(self.result)}") from None
        if bugs:
            raise bugs[0]
        if self.fatal is not None:
            rel, exc = self.fatal
            reason = EXPIRED_HINT if is_expired(exc) else str(aws_error(exc, f"uploading {rel}", self.bucket))
            raise UploadError(f"upload stopped: {reason}. {_progress_note(self.result)}")
        if self.problems:
            rel, why = self.problems[0]
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise UploadError(f"not uploaded: {rel}{more}: {why}. {_progress_note(self.result)}")

    def send(self, file: LocalFile, key: str) -> None:
        import botocore.exceptions as be

        if self.stop.is_set():
            return
        why = ""
        try:
            for _ in range(ATTEMPTS):
                seen_ns = now_ns()
                before, data, steady = _read(file.path, self.part_size)
                if data is None:
                    sent = self._multipart(file.path, key)
                else:
                    sent = self._put(data, key) if steady else None
                if sent is None:
                    why = "it changed while being read; run the upload again once it is no longer written to"
                elif not sent[0]:
                    why = (f"S3 did not confirm its bytes in {ATTEMPTS} attempts (refused, or its answer does not "
                           "match the checksum sent)")
                elif _stamp(file.path) != before:
                    why = "it changed while being uploaded; run the upload again once it is no longer written to"
                else:
                    with self.lock:
                        self.result.uploaded.append(file.rel)
                        self.result.bytes_uploaded += sent[1]
                    if sent[2]:
                        self.cache.put(file.rel, before, sent[2], seen_ns)
                    return
        except _Stopped:
            return
        except OSError as exc:
            why = f"it could not be read ({exc.strerror or exc})"
        except (be.ClientError, be.BotoCoreError) as exc:
            with self.lock:
                self.fatal = self.fatal or (file.rel, exc)
            self.stop.set()
            return
        with self.lock:
            self.problems.append((file.rel, why))

    def _put(self, data: bytes, key: str) -> tuple[bool, int, str]:
        """(confirmed, size, ETag to remember or "") for one PUT of `data`."""
        crc = _crc32(data)
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumAlgorithm="CRC32",
                                              ChecksumCRC32=crc)
        except Exception as exc:
            if _code(exc) in INTEGRITY_CODES:
                return False, len(data), ""
            raise
        ok, etag = _confirm(response, crc, data)
        if ok and self.progress:
            self.progress(len(data))
        return ok, len(data), etag

    def _multipart(self, path: Path, key: str) -> tuple[bool, int, str]:
        client, bucket = self.client, self.bucket
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
        completed = False
        try:
            parts, etags, size = [], [], 0
            with open(path, "rb") as fh:
                for number, chunk in enumerate(iter(lambda: fh.read(self.part_size), b""), 1):
                    if self.stop.is_set():
                        raise _Stopped
                    crc = _crc32(chunk)
                    try:
                        response = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                      Body=chunk, ChecksumAlgorithm="CRC32", ChecksumCRC32=crc)
                    except Exception as exc:
                        if _code(exc) in INTEGRITY_CODES:
                            return False, size, ""
                        raise
                    ok, etag = _confirm(response, crc, chunk)
                    if not ok:
                        return False, size, ""
                    parts.append({"ETag": response["ETag"], "PartNumber": number, "ChecksumCRC32": crc})
                    etags.append(etag)
                    size += len(chunk)
                    if self.progress:
                        self.progress(len(chunk))
            response = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                                        MultipartUpload={"Parts": parts})
            completed = True
            if not all(etags) or _encrypted(response):  # ETags no MD5s: S3 checked every part's CRC32, nothing to add
                return True, size, ""
            etag = f"{_md5(b''.join(bytes.fromhex(e) for e in etags)).hexdigest()}-{len(etags)}"
            return response.get("ETag", "").strip('"') == etag, size, etag
        finally:
            if not completed:  # no orphaned parts left billing
                try:
                    client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                except Exception:  # noqa: BLE001 - the original error is the one to report
                    pass


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def _progress_note(result: UploadResult) -> str:
    done = result.skipped + len(result.uploaded)
    return (f"{done} of {result.total} files are in {result.uri} ({len(result.uploaded)} uploaded now) and are kept; "
            "re-running `dogbreed data upload` uploads only the rest")
