"""What the prediction page learns from the server (`GET /about`, `GET /report`): a deploy of
the last trained model names its training job and links that job's report; any other model
gets no job and a 404 JSON for /report. Real `dogbreed deploy`, real server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

from dogbreed.serving.page import LOW_CONFIDENCE
from dogbreed.workspace import Workspace
from tests.conftest import run_dogbreed
from tests.test_server_local import free_port


def get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_the_recorded_model_names_its_job_and_links_its_report(tiny_model_tar, tmp_path):
    ws = tmp_path / "ws"
    env = {"DOGBREED_WORKSPACE": str(ws)}
    Workspace.resolve(str(ws)).update(model_data={"uri": str(tiny_model_tar), "job": "job-x", "backend": "local"})
    report = ws / "reports" / "job-x" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<!doctype html><title>Training job job-x</title>")
    other = tmp_path / "other.tar.gz"
    shutil.copy(tiny_model_tar, other)
    ports = free_port(), free_port()
    try:
        run_dogbreed("deploy", "--port", ports[0], "--name", "page-a", env=env, timeout=180, check=True)
        status, ctype, body = get(ports[0], "/about")
        assert status == 200 and ctype == "application/json"
        assert json.loads(body) == {"endpoint": "page-a", "job": "job-x", "model": "resnet18, 5 breeds, 48 px",
                                    "report": "/report", "low_confidence": LOW_CONFIDENCE}
        assert get(ports[0], "/report") == (200, "text/html; charset=utf-8", report.read_bytes())

        run_dogbreed("deploy", "--model-data", other, "--port", ports[1], "--name", "page-b", env=env, timeout=180,
                     check=True)
        about = json.loads(get(ports[1], "/about")[2])
        assert about["endpoint"] == "page-b" and about["job"] is None and about["report"] is None
        status, ctype, body = get(ports[1], "/report")
        assert (status, ctype) == (404, "application/json")
        assert json.loads(body) == {"error": "this endpoint was deployed without a report"}
    finally:
        for name in ("page-a", "page-b"):
            run_dogbreed("undeploy", name, env=env)
