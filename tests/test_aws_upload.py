"""`dogbreed data upload` against moto's S3, through the real CLI: parallel upload, skip
unchanged, resume after an interruption without uploading anything twice, and the errors."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.aws_events import PutCounter, on_every_session, s3_error

BUCKET = "dogbreed-data-test"


@pytest.fixture
def s3(aws):
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(s3, prefix=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def local_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def etag(s3, key):
    return s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')


def assert_intact(s3, root, prefix):
    """Every object under `prefix` holds exactly the bytes of its local file."""
    for key in keys(s3, prefix):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == (root / key[len(prefix):]).read_bytes(), key


def state(workspace):
    path = workspace / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_upload_mirrors_dataset_records_uri_and_second_run_sends_nothing(cli, workspace, sample_data, s3, monkeypatch):
    puts = PutCounter().install(monkeypatch)
    files = local_files(sample_data)

    r = cli("--bucket", BUCKET, "data", "upload", sample_data, "--prefix", "/datasets//dogs/", "--jobs", 8)
    assert r.exit_code == 0, r.output
    assert puts.sent == len(files)
    assert keys(s3) == sorted(f"datasets/dogs/{f}" for f in files)
    assert state(workspace)["dataset_s3"] == f"s3://{BUCKET}/datasets/dogs/"
    one = files[0]
    assert etag(s3, f"datasets/dogs/{one}") == md5(sample_data / one)
    assert f"{len(files)} uploaded" in r.output

    # Same prefix spelled without slashes: same keys, nothing sent again.
    r = cli("data", "upload", sample_data, "--prefix", "datasets/dogs", "--bucket", BUCKET)
    assert r.exit_code == 0, r.output
    assert puts.sent == len(files)
    assert f"{len(files)} file(s) already in S3 and unchanged; 0 to upload" in r.output


def test_changed_file_of_same_size_is_uploaded_again(cli, workspace, sample_data, s3, monkeypatch, tmp_path):
    import shutil

    data = tmp_path / "dogs"
    shutil.copytree(sample_data, data)
    assert cli("--bucket", BUCKET, "data", "upload", data).exit_code == 0
    victim = sorted((data / "train").rglob("*.jpg"))[0]
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0xFF  # same size, different content: only the checksum can tell
    victim.write_bytes(bytes(raw))
    puts = PutCounter().install(monkeypatch)

    r = cli("--bucket", BUCKET, "data", "upload", data)
    assert r.exit_code == 0, r.output
    assert puts.sent == 1
    key = f"dogbreed/data/dogs/{victim.relative_to(data).as_posix()}"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == bytes(raw)


def test_interrupted_upload_resumes_with_only_the_missing_files(cli, workspace, sample_data, s3, monkeypatch):
    files = local_files(sample_data)
    puts = PutCounter(fail_after=7).install(monkeypatch)  # the session token expires after 7 PUTs

    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 1
    assert "upload stopped: the AWS session token has expired" in r.output
    assert f"7 of {len(files)} files are in s3://{BUCKET}/dogbreed/data/sample/" in r.output
    assert "re-running `dogbreed data upload` uploads only the rest" in r.output
    assert len(keys(s3)) == puts.sent == 7
    assert_intact(s3, sample_data, "dogbreed/data/sample/")
    assert "dataset_s3" not in state(workspace)  # only a complete upload becomes the default --data

    puts.fail_after, puts.sent = None, 0  # credentials refreshed
    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 0, r.output
    assert puts.sent == len(files) - 7  # nothing uploaded twice
    assert keys(s3) == sorted(f"dogbreed/data/sample/{f}" for f in files)
    assert_intact(s3, sample_data, "dogbreed/data/sample/")
    assert state(workspace)["dataset_s3"] == f"s3://{BUCKET}/dogbreed/data/sample/"


def test_ctrl_c_stops_after_the_files_in_flight_and_the_rerun_sends_the_rest(cli, workspace, sample_data, s3,
                                                                             monkeypatch):
    import os
    import signal
    import threading

    files, sent, lock = local_files(sample_data), [], threading.Lock()

    def ctrl_c_at_the_fourth_put(**kwargs):  # the signal reaches the main thread, as a terminal's does
        with lock:
            sent.append(kwargs["params"]["Key"])
            if len(sent) == 4:
                os.kill(os.getpid(), signal.SIGINT)

    on_every_session(monkeypatch, "before-parameter-build.s3.PutObject", ctrl_c_at_the_fourth_put)
    # Python's own Ctrl-C handler, as in a terminal: a run started in the background (`cmd &`) inherits
    # SIGINT ignored, and then Python installs none
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        r = cli("--bucket", BUCKET, "data", "upload", sample_data, "--jobs", "2")
    finally:
        signal.signal(signal.SIGINT, before)
    assert r.exit_code == 1
    assert "interrupted:" in r.output and "re-running `dogbreed data upload` uploads only the rest" in r.output
    held = keys(s3)
    assert 4 <= len(held) < len(files)  # the workers finished the files they were sending, then stopped
    assert_intact(s3, sample_data, "dogbreed/data/sample/")
    assert not [t for t in threading.enumerate() if t.name.startswith("dogbreed-upload")]

    sent.clear()
    monkeypatch.setattr(os, "kill", lambda *a: None)
    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 0, r.output
    assert sorted(sent) == sorted(set(f"dogbreed/data/sample/{f}" for f in files) - set(held))  # only the rest
    assert_intact(s3, sample_data, "dogbreed/data/sample/")


def test_upload_defaults_to_the_recorded_dataset(cli, workspace, s3, tmp_path):
    assert cli("data", "synth", "--out", tmp_path / "mini", "--classes", 2, "--per-class", 2,
               "--image-size", 16).exit_code == 0
    r = cli("--bucket", BUCKET, "data", "upload")
    assert r.exit_code == 0, r.output
    assert len(keys(s3, "dogbreed/data/mini/")) == len(local_files(tmp_path / "mini"))


@pytest.mark.parametrize("bucket, message", [
    ("Bad_Bucket", "invalid S3 bucket name 'Bad_Bucket': use 3-63 lowercase letters"),
    ("s3://dogbreed-data-test", "give the bucket name only"),
    ("no-such-bucket-here", "bucket 'no-such-bucket-here' does not exist: create it with `aws s3 mb"),
])
def test_bad_bucket(cli, workspace, sample_data, s3, bucket, message):
    r = cli("--bucket", bucket, "data", "upload", sample_data)
    assert r.exit_code == 1
    assert message in r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1


def test_bucket_in_another_region(cli, workspace, sample_data, s3):
    import boto3

    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="dogbreed-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    r = cli("--bucket", "dogbreed-eu", "data", "upload", sample_data)
    assert r.exit_code == 1
    assert ("bucket 'dogbreed-eu' is in eu-west-1, but the session region is us-east-1: "
            "SageMaker reads data only from its own region; pass --region eu-west-1") in r.output
    assert cli("--region", "eu-west-1", "--bucket", "dogbreed-eu", "data", "upload", sample_data).exit_code == 0


def test_bad_dataset_paths(cli, workspace, s3, tmp_path, sample_data):
    r = cli("--bucket", BUCKET, "data", "upload", tmp_path / "missing")
    assert r.exit_code == 1 and "missing does not exist; create one with `dogbreed data synth`" in r.output
    r = cli("--bucket", BUCKET, "data", "upload", sample_data.parent)
    assert r.exit_code == 1 and "holds no train/ valid/ test/ folders; pass the dogImages folder itself" in r.output
    r = cli("--bucket", BUCKET, "data", "upload", sample_data, "--prefix", f"s3://{BUCKET}/x")
    assert r.exit_code == 1 and "give the key prefix only" in r.output
    r = cli("--bucket", BUCKET, "data", "upload")
    assert r.exit_code == 1 and "no PATH given and no dataset recorded" in r.output
    assert keys(s3) == []


def test_expired_token_before_anything_is_sent(cli, workspace, sample_data, s3, monkeypatch):
    on_every_session(monkeypatch, "before-call.s3.HeadBucket", lambda **kw: s3_error("ExpiredToken", "expired"))
    r = cli("--bucket", BUCKET, "data", "upload", sample_data)
    assert r.exit_code == 1
    assert "the AWS session token has expired: refresh your credentials (`aws sso login" in r.output
    assert keys(s3) == []


def test_upload_sends_what_data_check_and_training_see_through_symlinks(cli, workspace, sample_data, s3, tmp_path):
    import shutil

    data = tmp_path / "linked"
    shutil.copytree(sample_data, data)
    elsewhere = tmp_path / "elsewhere"
    (data / "train" / "005.Alaskan_malamute").rename(elsewhere)
    (data / "train" / "005.Alaskan_malamute").symlink_to(elsewhere, target_is_directory=True)
    (data / "train" / "006.Loop").symlink_to(data / "train" / "006.Loop")
    check = cli("data", "check", data)
    assert "classes: 5 " in check.output and "1 followed (train/005.Alaskan_malamute)" in check.output, check.output
    r = cli("--bucket", BUCKET, "data", "upload", data, "--prefix", "linked")
    assert r.exit_code == 0, r.output
    classes = {k.split("/")[2] for k in keys(s3, "linked/train/")}
    assert classes == {p.name for p in (sample_data / "train").iterdir()}  # the symlinked breed went too
    assert not any("006.Loop" in k for k in keys(s3, "linked/"))
