"""Data commands for real: synth, check, download (against a local HTTP server), extraction safety."""

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from dogbreed.data import download as dl
from dogbreed.data.synth import SynthSpec, synthesize
from dogbreed.errors import DataError, DownloadError
from dogbreed.training.data import DogImages


def test_synth_layout_and_determinism(tmp_path, cli, workspace):
    result = cli("data", "synth", "--out", tmp_path / "s", "--classes", "3", "--per-class", "8", "--image-size", "32")
    assert result.exit_code == 0, result.output
    assert "wrote 36 images" in result.output
    train = sorted(p.name for p in (tmp_path / "s" / "train").iterdir())
    assert train == ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
    assert len(list((tmp_path / "s" / "valid" / train[0]).glob("*.jpg"))) == 2
    synthesize(tmp_path / "t", SynthSpec(classes=3, per_class=8, image_size=32))
    a = (tmp_path / "s/train/001.Affenpinscher/Affenpinscher_00000.jpg").read_bytes()
    b = (tmp_path / "t/train/001.Affenpinscher/Affenpinscher_00000.jpg").read_bytes()
    assert a == b
    assert Path(cli("data", "check").output.splitlines()[0].split(": ", 1)[1]) == (tmp_path / "s").absolute()


def test_synth_refuses_a_foreign_folder(tmp_path, cli, workspace):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    result = cli("data", "synth", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "not a dogbreed dataset" in result.output
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


@pytest.fixture
def damaged(tmp_path):
    root = tmp_path / "d"
    synthesize(root, SynthSpec(classes=2, per_class=4, image_size=32))
    cls = root / "train" / "001.Affenpinscher"
    (cls / "junk.jpg").write_bytes(b"not an image at all")
    good = next(cls.glob("*.jpg")).read_bytes()
    (cls / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (cls / "notes.txt").write_text("x")
    return root


def test_check_reports_unreadable_files(damaged, cli, workspace):
    result = cli("data", "check", damaged)
    assert result.exit_code == 0, result.output
    assert "train: 8 images, 3 unreadable" in result.output
    assert "junk.jpg" in result.output


def test_corrupt_images_are_skipped_during_training_data_loading(damaged):
    from dogbreed.training.data import collate_skip_none
    from dogbreed.training.presets import ClassificationPresetEval

    data = DogImages.scan(damaged)
    ds = data.dataset("train", ClassificationPresetEval(crop_size=32))
    items = [ds[i] for i in range(len(ds))]
    x, y = collate_skip_none(items)
    # junk and notes.txt fail the header scan; the truncated file fails there or at decode
    assert data.skipped["train"] in (2, 3) and len(y) == 8 and x.shape == (8, 3, 32, 32)


def test_split_class_mismatch_is_a_clear_error(tmp_path):
    synthesize(tmp_path / "m", SynthSpec(classes=3, per_class=4, image_size=32))
    (tmp_path / "m" / "valid" / "003.Airedale_terrier").rename(tmp_path / "m" / "valid" / "004.Akita")
    with pytest.raises(DataError, match="valid/ and train/ have different classes"):
        DogImages.scan(tmp_path / "m")


def test_nested_dogimages_root_is_found(tmp_path):
    synthesize(tmp_path / "outer" / "dogImages", SynthSpec(classes=2, per_class=2, image_size=32))
    assert DogImages.scan(tmp_path / "outer").root.name == "dogImages"


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # supports Range like S3
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            if "Range" in self.headers:
                start = int(self.headers["Range"].split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _zip_of(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "dogImages/" + str(p.relative_to(folder)))
    return buf.getvalue()


def test_download_resumes_and_extracts(tmp_path, http_root, cli, workspace):
    root, base = http_root
    synthesize(tmp_path / "src", SynthSpec(classes=2, per_class=3, image_size=32))
    payload = _zip_of(tmp_path / "src")
    (root / "dogImages.zip").write_bytes(payload)
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "dogImages.zip.part").write_bytes(payload[:1000])  # an interrupted earlier download
    result = cli("data", "download", "--out", dest, "--url", f"{base}/dogImages.zip")
    assert result.exit_code == 0, result.output
    assert (dest / "dogImages" / "train" / "001.Affenpinscher").is_dir()
    assert not (dest / "dogImages.zip").exists() and not (dest / "dogImages.zip.part").exists()
    a = hashlib.sha256((tmp_path / "src/train/001.Affenpinscher/Affenpinscher_00000.jpg").read_bytes()).digest()
    b = hashlib.sha256((dest / "dogImages/train/001.Affenpinscher/Affenpinscher_00000.jpg").read_bytes()).digest()
    assert a == b


def test_download_offline_is_a_clear_error(tmp_path, cli, workspace):
    result = cli("data", "download", "--out", tmp_path, "--url", "http://127.0.0.1:9/dogImages.zip")
    assert result.exit_code == 1
    assert "cannot reach 127.0.0.1:9" in result.output and "dogbreed data synth" in result.output


def test_corrupt_archive_is_removed(tmp_path, http_root):
    root, base = http_root
    (root / "dogImages.zip").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DownloadError, match="not a valid zip"):
        dl.download_dog_images(tmp_path / "x", f"{base}/dogImages.zip")
    assert not (tmp_path / "x" / "dogImages.zip").exists()


def test_zip_slip_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dogImages/train/a/ok.jpg", b"x")
        zf.writestr("../../escaped.txt", b"gotcha")
    with pytest.raises(DataError, match="outside"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
