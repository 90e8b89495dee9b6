"""`dogbreed data upload` trusts only what S3 holds: the CRC32 of the body on every PUT and S3's echo
of it checked (or, from a store that ignores it, the ETag against the MD5), a re-run that repairs
whatever does not match, multipart objects compared by their composite ETag, and files that change
while they are sent. Against moto, through the real CLI.

moto stores whatever body arrives and echoes the `x-amz-checksum-crc32` it was sent; real S3 refuses a
body that does not match it (BadDigest). `s3_checks_crc32` gives moto that one S3 rule."""

from __future__ import annotations

import base64
import io
import shutil
import zlib
from urllib.parse import unquote

import pytest

from tests.aws_events import PutCounter, on_every_session, s3_error
from tests import test_aws_upload
from tests.test_aws_upload import BUCKET, assert_intact, etag, keys, md5

s3 = test_aws_upload.s3  # the fixture: a bucket in moto, and a client

PREFIX = "dogbreed/data/dogs/"


@pytest.fixture
def data(sample_data, tmp_path):
    """A private copy of the sample dataset (these tests edit files)."""
    shutil.copytree(sample_data, tmp_path / "dogs")
    return tmp_path / "dogs"


def victim_of(data):
    path = sorted((data / "train").rglob("*.jpg"))[0]
    return path, PREFIX + path.relative_to(data).as_posix()


@pytest.fixture
def s3_checks_crc32(s3, monkeypatch):
    """moto refuses a PUT (or part) whose body does not match its `x-amz-checksum-crc32`, as S3 does."""
    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    real = S3Response._get_checksum

    def checked(self, response_headers):
        sent = self.headers.get("x-amz-checksum-crc32")
        if sent is not None and sent != crc32(self.body):
            raise S3ClientError("BadDigest", "The CRC32 you specified did not match the calculated checksum.")
        return real(self, response_headers)

    monkeypatch.setattr(S3Response, "_get_checksum", checked)
    return s3


def crc32(body: bytes) -> str:
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


class CorruptInTransit:
    """Flips one body byte of the PUTs of `key` after the SDK serialised them (CRC32 header already set),
    `times` times."""

    def __init__(self, key: str, times: int):
        self.key, self.times, self.corrupted = key, times, 0

    def __call__(self, request, **kwargs):
        if unquote(request.url).endswith("/" + self.key) and self.corrupted < self.times:
            body = bytearray(body_of(request))
            body[len(body) // 2] ^= 0xFF
            request.data = io.BytesIO(body)
            self.corrupted += 1


def body_of(request) -> bytes:
    """The body the SDK is about to send (it wraps bytes in a file object)."""
    return request.data.getvalue() if hasattr(request.data, "getvalue") else bytes(request.data)


def test_every_put_carries_the_crc32_of_its_body(cli, workspace, data, s3, monkeypatch):
    seen = []

    def check(request, **kwargs):
        seen.append(request.headers["x-amz-checksum-crc32"] == crc32(body_of(request)))

    on_every_session(monkeypatch, "request-created.s3.PutObject", check)
    assert cli("--bucket", BUCKET, "data", "upload", data).exit_code == 0
    assert seen and all(seen) and len(seen) == len(keys(s3))
    assert_intact(s3, data, PREFIX)


def test_small_puts_do_not_wait_for_100_continue_and_large_parts_do(aws, s3, tmp_path, monkeypatch):
    import boto3

    from dogbreed.backends.sagemaker.s3 import upload_dataset

    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "train" / "big.bin").write_bytes(b"\x01" * (11 * 1024 * 1024))
    (tmp_path / "d" / "train" / "small.jpg").write_bytes(b"dog" * 100)
    session, expect = boto3.Session(region_name="us-east-1"), {}
    session.events.register("before-send.s3", lambda request, **kw: expect.setdefault(
        (request.method, request.url.split("?")[0].rsplit("/", 1)[-1]), []).append(request.headers.get("Expect")))
    upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "e", part_size=9 * 1024 * 1024)
    assert expect[("PUT", "small.jpg")] == [None]  # one round trip, not two
    assert expect[("PUT", "big.bin")] == [b"100-continue", b"100-continue"]  # 9 MiB parts: S3 may refuse first


@pytest.mark.parametrize("endpoint, body_hashed", [(None, False), ("http://s3.us-east-1.amazonaws.com", True)])
def test_bodies_are_hashed_into_the_signature_only_where_botocore_would(aws, s3, tmp_path, monkeypatch,
                                                                         endpoint, body_hashed):
    """Over TLS a body whose CRC32 S3 validates goes as UNSIGNED-PAYLOAD, as botocore sends its own
    checksummed uploads (no SHA-256 pass over every byte); plain http still hashes it."""
    import boto3

    from dogbreed.backends.sagemaker.s3 import upload_dataset

    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    (tmp_path / "d" / "train").mkdir(parents=True)
    (tmp_path / "d" / "train" / "big.bin").write_bytes(b"\x02" * (11 * 1024 * 1024))
    (tmp_path / "d" / "train" / "small.jpg").write_bytes(b"dog" * 100)
    session, sent = boto3.Session(region_name="us-east-1"), []

    def record(request, **kwargs):
        if request.method == "PUT":
            signed = request.headers["Authorization"].decode().split("SignedHeaders=")[1].split(",")[0]
            sent.append((request.headers["X-Amz-Content-SHA256"].decode(), "x-amz-checksum-crc32" in signed))

    session.events.register("before-send.s3", record)
    upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "u", part_size=5 * 1024 * 1024)
    assert len(sent) == 4 and all(crc_signed for _, crc_signed in sent)  # 3 parts + 1 PUT
    assert all((digest != "UNSIGNED-PAYLOAD") == body_hashed for digest, _ in sent)
    assert_intact(s3, tmp_path / "d", "u/")


def test_body_corrupted_in_transit_is_refused_and_sent_again(cli, workspace, data, s3_checks_crc32, monkeypatch):
    s3 = s3_checks_crc32
    path, key = victim_of(data)
    corrupt = CorruptInTransit(key, times=1)
    on_every_session(monkeypatch, "request-created.s3.PutObject", corrupt)
    puts = PutCounter().install(monkeypatch)

    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert corrupt.corrupted == 1 and puts.sent == len(keys(s3)) + 1  # the victim went twice
    assert_intact(s3, data, PREFIX)


class EditAnswer:
    """Changes S3's parsed answers to PutObject: `echo(key, parsed)` returns the CRC32 echo to show (None:
    no echo, as from a store that ignores the header)."""

    def __init__(self, echo):
        self.echo, self.edited = echo, 0

    def __call__(self, parsed, model, context, **kwargs):
        if "ETag" in parsed:
            value = self.echo(parsed)
            if value != parsed.get("ChecksumCRC32"):
                self.edited += 1
            if value is None:
                parsed.pop("ChecksumCRC32", None)
            else:
                parsed["ChecksumCRC32"] = value


def test_an_echo_other_than_the_crc32_sent_is_not_trusted(cli, workspace, data, s3, monkeypatch):
    wrong = EditAnswer(lambda parsed: "AAAAAA==" if not wrong.edited else parsed["ChecksumCRC32"])
    on_every_session(monkeypatch, "after-call.s3.PutObject", wrong)
    puts = PutCounter().install(monkeypatch)

    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert wrong.edited == 1 and puts.sent == len(keys(s3)) + 1  # one file went twice
    assert_intact(s3, data, PREFIX)


def test_a_store_that_ignores_the_crc32_is_checked_by_its_etag(cli, workspace, data, s3, monkeypatch):
    path, key = victim_of(data)
    silent = EditAnswer(lambda parsed: None)
    on_every_session(monkeypatch, "after-call.s3.PutObject", silent)
    corrupt = CorruptInTransit(key, times=1)  # stored as it arrives: only the ETag (MD5 of it) shows it
    on_every_session(monkeypatch, "request-created.s3.PutObject", corrupt)
    puts = PutCounter().install(monkeypatch)

    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert corrupt.corrupted == 1 and puts.sent == len(keys(s3)) + 1 and silent.edited == puts.sent
    assert_intact(s3, data, PREFIX)


def test_a_first_upload_computes_no_md5_where_s3_echoes_the_crc32(cli, workspace, data, s3, monkeypatch):
    from dogbreed.backends.sagemaker import s3 as upload

    hashed = []
    real = upload._md5
    monkeypatch.setattr(upload, "_md5", lambda data: hashed.append(len(data)) or real(data))
    assert cli("--bucket", BUCKET, "data", "upload", data).exit_code == 0
    assert hashed == []
    assert_intact(s3, data, PREFIX)


def test_bad_digest_from_s3_is_retried(cli, workspace, data, s3, monkeypatch):
    _, key = victim_of(data)
    refused = []

    def refuse_once(params, **kwargs):
        if unquote(params["url_path"]).endswith("/" + key) and not refused:
            refused.append(key)
            return s3_error("BadDigest", "The Content-MD5 you specified did not match what we received.")

    on_every_session(monkeypatch, "before-call.s3.PutObject", refuse_once)
    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert refused == [key]
    assert_intact(s3, data, PREFIX)


def test_persistent_corruption_is_reported_never_counted_and_the_rerun_repairs_it(cli, workspace, data,
                                                                                 s3_checks_crc32, monkeypatch):
    s3 = s3_checks_crc32
    path, key = victim_of(data)
    n = len([p for p in data.rglob("*") if p.is_file()])
    with monkeypatch.context() as m:
        on_every_session(m, "request-created.s3.PutObject", CorruptInTransit(key, times=99))
        r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 1
    rel = path.relative_to(data).as_posix()
    assert (f"Error: not uploaded: {rel}: S3 did not confirm its bytes in 3 attempts (refused, or its answer does "
            f"not match the checksum sent). {n - 1} of {n} files are in s3://{BUCKET}/{PREFIX}") in r.output
    assert [line for line in r.output.splitlines() if line.startswith("Error")] == [r.output.splitlines()[-1]]
    assert key not in keys(s3)

    puts = PutCounter().install(monkeypatch)
    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert f"{n - 1} file(s) already in S3 and unchanged; 1 to upload" in r.output
    assert puts.sent == 1
    assert_intact(s3, data, PREFIX)


def test_rerun_repairs_an_object_s3_holds_corrupt_even_with_our_old_metadata(cli, workspace, data, s3, monkeypatch):
    assert cli("--bucket", BUCKET, "data", "upload", data).exit_code == 0
    path, key = victim_of(data)
    bad = bytearray(path.read_bytes())
    bad[10] ^= 0x01  # same size; metadata claiming the local MD5, as the old uploader wrote and trusted
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(bad), Metadata={"dogbreed-md5": md5(path)})
    puts = PutCounter().install(monkeypatch)

    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert puts.sent == 1
    assert "1 to upload" in r.output
    assert_intact(s3, data, PREFIX)


@pytest.mark.parametrize("changes, code", [(1, 0), (99, 1)])
def test_file_that_changes_while_it_is_uploaded(cli, workspace, data, s3, monkeypatch, changes, code):
    path, key = victim_of(data)
    edits = []

    def write_during_put(params, **kwargs):  # another process writes the file while our PUT is under way
        if params["Key"] == key and len(edits) < changes:
            edits.append(1)
            path.write_bytes(path.read_bytes() + b"x")

    with monkeypatch.context() as m:
        on_every_session(m, "before-parameter-build.s3.PutObject", write_during_put)
        r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == code, r.output
    if code:
        rel = path.relative_to(data).as_posix()
        assert (f"Error: not uploaded: {rel}: it changed while being uploaded; run the upload again once it is no "
                "longer written to.") in r.output
        assert etag(s3, key) != md5(path)  # S3 holds an older version: not reported as uploaded
        r = cli("--bucket", BUCKET, "data", "upload", data)  # the writer has finished
        assert r.exit_code == 0, r.output
        assert "1 to upload" in r.output
    assert_intact(s3, data, PREFIX)



@pytest.mark.parametrize("changes, code", [(1, 0), (99, 1)])
def test_file_that_changes_while_it_is_read_is_not_sent_as_read(cli, workspace, data, s3, monkeypatch, changes,
                                                                  code):
    """A write between the read and the stamp taken after it: those bytes are never PUT."""
    import os

    path, key = victim_of(data)
    real_read, edits, sent = os.read, [], []

    def read_then_written(fd, n):  # another process appends right after our read of the victim
        out = real_read(fd, n)
        if os.readlink(f"/proc/self/fd/{fd}") == str(path.resolve()) and len(edits) < changes:
            edits.append(1)
            with open(path, "ab") as fh:
                fh.write(b"x")
        return out

    def count_put(params, **kwargs):
        if params["Key"] == key:
            sent.append(len(params["Body"]))

    with monkeypatch.context() as m:
        m.setattr(os, "read", read_then_written)
        on_every_session(m, "before-parameter-build.s3.PutObject", count_put)
        r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == code, r.output
    if code:
        rel = path.relative_to(data).as_posix()
        assert (f"Error: not uploaded: {rel}: it changed while being read; run the upload again once it is no "
                "longer written to.") in r.output
        assert sent == [] and key not in keys(s3, PREFIX)
        r = cli("--bucket", BUCKET, "data", "upload", data)  # the writer has finished
        assert r.exit_code == 0, r.output
        assert "1 to upload" in r.output
    else:
        assert sent == [path.stat().st_size]  # one PUT, of the bytes as they were after the write
    assert_intact(s3, data, PREFIX)

def test_multipart_objects_are_verified_by_their_composite_etag(aws, s3, tmp_path, monkeypatch):
    import boto3

    from dogbreed.backends.sagemaker.s3 import expected_etag, upload_dataset

    part = 5 * 1024 * 1024  # S3's smallest part
    (tmp_path / "d" / "train").mkdir(parents=True)
    big = tmp_path / "d" / "train" / "big.bin"
    big.write_bytes(bytes(range(256)) * (11 * 1024 * 1024 // 256))  # 3 parts
    (tmp_path / "d" / "train" / "small.jpg").write_bytes(b"dog" * 100)
    session = boto3.Session(region_name="us-east-1")

    result = upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "m", part_size=part)
    assert sorted(result.uploaded) == ["train/big.bin", "train/small.jpg"]
    assert etag(s3, "m/train/big.bin") == expected_etag(big, big.stat().st_size, part)
    assert expected_etag(big, big.stat().st_size, part).endswith("-3")
    assert upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "m", part_size=part).skipped == 2

    # Same size, other bytes in S3 (single PUT: its ETag is no composite): the re-run sends it again, in parts.
    bad = bytearray(big.read_bytes())
    bad[-1] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key="m/train/big.bin", Body=bytes(bad))
    result = upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "m", part_size=part)
    assert result.uploaded == ["train/big.bin"] and result.skipped == 1
    assert s3.get_object(Bucket=BUCKET, Key="m/train/big.bin")["Body"].read() == big.read_bytes()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_multipart_part_s3_refuses_is_sent_again(aws, s3_checks_crc32, tmp_path, monkeypatch):
    import boto3

    from dogbreed.backends.sagemaker.s3 import expected_etag, upload_dataset

    s3, part = s3_checks_crc32, 5 * 1024 * 1024
    (tmp_path / "d" / "train").mkdir(parents=True)
    big = tmp_path / "d" / "train" / "big.bin"
    big.write_bytes(bytes(range(256)) * (11 * 1024 * 1024 // 256))
    session, sent, completed = boto3.Session(region_name="us-east-1"), [], []

    def corrupt_second_part_once(request, **kwargs):
        sent.append(request.headers["x-amz-checksum-crc32"])
        if len(sent) == 2:
            body = bytearray(body_of(request))
            body[0] ^= 0xFF
            request.data = io.BytesIO(body)

    session.events.register("request-created.s3.UploadPart", corrupt_second_part_once)
    session.events.register("before-call.s3.CompleteMultipartUpload",
                            lambda params, **kw: completed.append(params["body"]))
    result = upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "m", part_size=part)
    assert result.uploaded == ["train/big.bin"]
    assert len(sent) == 2 + 3  # the refused part ended that attempt; the next sent all three parts
    assert completed and all(b"<ChecksumCRC32>" in body for body in completed)
    assert etag(s3, "m/train/big.bin") == expected_etag(big, big.stat().st_size, part)
    assert s3.get_object(Bucket=BUCKET, Key="m/train/big.bin")["Body"].read() == big.read_bytes()
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_missing_bucket_then_created_the_rerun_finishes(cli, workspace, data, s3):
    r = cli("--bucket", "dogbreed-not-yet", "data", "upload", data)
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "bucket 'dogbreed-not-yet' does not exist: create it with `aws s3 mb s3://dogbreed-not-yet`" in r.output
    s3.create_bucket(Bucket="dogbreed-not-yet")
    r = cli("--bucket", "dogbreed-not-yet", "data", "upload", data)
    assert r.exit_code == 0, r.output
    n = len([p for p in data.rglob("*") if p.is_file()])
    assert f"{n} uploaded" in r.output


def test_expired_token_mid_multipart_leaves_no_parts_and_the_rerun_finishes(aws, s3, tmp_path, monkeypatch):
    import boto3

    from dogbreed.backends.sagemaker.s3 import UploadError, upload_dataset

    part = 5 * 1024 * 1024
    (tmp_path / "d" / "train").mkdir(parents=True)
    big = tmp_path / "d" / "train" / "big.bin"
    big.write_bytes(bytes(range(256)) * (11 * 1024 * 1024 // 256))
    session = boto3.Session(region_name="us-east-1")
    parts = []

    def expire_after_two(**kwargs):
        parts.append(1)
        if len(parts) > 2:
            return s3_error("ExpiredToken", "The provided token has expired.")

    session.events.register("before-call.s3.UploadPart", expire_after_two)
    with pytest.raises(UploadError, match=r"upload stopped: the AWS session token has expired.* 0 of 1 files"):
        upload_dataset(session, BUCKET, "us-east-1", tmp_path / "d", "m", part_size=part)
    assert keys(s3, "m/") == []
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []  # aborted: nothing left billing

    result = upload_dataset(boto3.Session(region_name="us-east-1"), BUCKET, "us-east-1", tmp_path / "d", "m",
                            part_size=part)
    assert result.uploaded == ["train/big.bin"]
    assert s3.get_object(Bucket=BUCKET, Key="m/train/big.bin")["Body"].read() == big.read_bytes()
