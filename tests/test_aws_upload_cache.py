"""The local ETag cache of `dogbreed data upload`: a re-run hashes only files whose stamp changed, and
the skip decision still compares with the ETag S3 lists. Against moto, through the real CLI."""

from __future__ import annotations

import os
import shutil

import pytest

from tests import test_aws_upload
from tests.aws_events import PutCounter
from tests.test_aws_upload import BUCKET, assert_intact

s3 = test_aws_upload.s3  # the fixture: a bucket in moto, and a client

PREFIX = "dogbreed/data/dogs/"


@pytest.fixture
def data(sample_data, tmp_path):
    shutil.copytree(sample_data, tmp_path / "dogs")
    return tmp_path / "dogs"


@pytest.fixture
def hashed(monkeypatch):
    """Which files the re-run hashes to compare with S3 (the cache spares the others)."""
    from dogbreed.backends.sagemaker import s3 as upload

    seen, real = [], upload.expected_etag

    def counting(path, *args, **kwargs):
        seen.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(upload, "expected_etag", counting)
    return seen


@pytest.fixture
def settled(monkeypatch):
    """Files written by the fixtures count as settled (no 2-second "racily clean" wait in tests)."""
    from dogbreed.backends.sagemaker import etag_cache

    monkeypatch.setattr(etag_cache, "RACY_NS", 0)


def n_files(root):
    return len([p for p in root.rglob("*") if p.is_file()])


def upload(cli, data):
    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    return r


def test_rerun_hashes_nothing_unchanged_and_keeps_one_cache_file_per_dataset(cli, workspace, data, s3, hashed,
                                                                              settled, tmp_path, monkeypatch):
    upload(cli, data)
    assert hashed == []  # first upload: every file hashed while it was sent
    puts = PutCounter().install(monkeypatch)
    r = upload(cli, data)
    assert f"{n_files(data)} file(s) already in S3 and unchanged; 0 to upload" in r.output
    assert hashed == [] and puts.sent == 0
    assert len(list((workspace / "cache" / "upload").glob("*.json"))) == 1
    other = tmp_path / "other"
    shutil.copytree(data, other)
    upload(cli, other)
    assert len(list((workspace / "cache" / "upload").glob("*.json"))) == 2


def test_first_upload_remembers_the_etag_s3_answered_which_is_the_local_md5(cli, workspace, data, s3, settled):
    import hashlib
    import json

    upload(cli, data)
    [cache] = (workspace / "cache" / "upload").glob("*.json")
    remembered = {rel: entry[-1] for rel, entry in json.loads(cache.read_text())["files"].items()}
    assert remembered == {p.relative_to(data).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
                          for p in data.rglob("*") if p.is_file()}


def test_same_size_edit_with_mtime_reset_is_uploaded_again(cli, workspace, data, s3, hashed, settled, monkeypatch):
    upload(cli, data)
    victim = sorted((data / "train").rglob("*.jpg"))[0]
    st = victim.stat()
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0xFF
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as before: only ctime tells
    assert (victim.stat().st_size, victim.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    puts = PutCounter().install(monkeypatch)

    r = upload(cli, data)
    assert "1 to upload" in r.output and puts.sent == 1
    assert hashed == [victim]
    assert_intact(s3, data, PREFIX)


def test_warm_cache_never_hides_an_object_s3_holds_corrupt(cli, workspace, data, s3, hashed, settled, monkeypatch):
    upload(cli, data)
    victim = sorted((data / "valid").rglob("*.jpg"))[0]
    bad = bytearray(victim.read_bytes())
    bad[5] ^= 0x01
    s3.put_object(Bucket=BUCKET, Key=PREFIX + victim.relative_to(data).as_posix(), Body=bytes(bad))
    puts = PutCounter().install(monkeypatch)

    r = upload(cli, data)
    assert "1 to upload" in r.output and puts.sent == 1
    assert hashed == []  # the local ETag came from the cache; S3's listed ETag decided
    assert_intact(s3, data, PREFIX)


@pytest.mark.parametrize("garbage", [b"\x00not json", b"[1, 2]", b'{"version": 1, "root": 3}',
                                     b'{"version": 1, "files": {"a": [1, 2]}}'])
def test_corrupt_cache_is_ignored_and_rebuilt(cli, workspace, data, s3, hashed, settled, garbage):
    upload(cli, data)
    [cache] = (workspace / "cache" / "upload").glob("*.json")
    cache.write_bytes(garbage)

    r = upload(cli, data)
    assert "0 to upload" in r.output
    assert len(hashed) == n_files(data)  # nothing trusted from the broken file: every file hashed again
    hashed.clear()
    upload(cli, data)
    assert hashed == []  # and the cache was written anew


def test_files_written_just_before_they_are_read_are_not_remembered(cli, workspace, data, s3, hashed, monkeypatch):
    from dogbreed.backends.sagemaker import etag_cache

    monkeypatch.setattr(etag_cache, "RACY_NS", 3600 * 10**9)  # the copy is younger than that (no sleep in tests)
    upload(cli, data)
    upload(cli, data)
    assert len(hashed) == n_files(data)


def test_a_cache_that_cannot_be_written_costs_only_hashing(cli, workspace, data, s3, hashed, settled):
    (workspace / "cache").mkdir(parents=True)
    (workspace / "cache" / "upload").write_text("a file where the cache folder would be")
    upload(cli, data)
    r = upload(cli, data)
    assert "0 to upload" in r.output and len(hashed) == n_files(data)
