"""A model artifact (model.tar.gz or an extracted folder) made ready to serve, as a local deploy
and `dogbreed serve` need it: extracted safely, checked, with code/inference.py."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from dogbreed.errors import EndpointError


def prepare_model_dir(model_data: str, dest: Path) -> Path:
    """Extract (or copy) the artifact to `dest` and add code/inference.py if it has none."""
    from dogbreed.backends.base import scripts_dir
    from dogbreed.training.model import CONFIG_FILE

    src = model_data[len("file://"):] if model_data.startswith("file://") else model_data
    if "://" in src:
        raise EndpointError(f"the local backend serves a model on this machine, not {model_data}: copy it here "
                            "(e.g. `aws s3 cp URI model.tar.gz`) and pass --model-data model.tar.gz, "
                            "or deploy with --backend sagemaker")
    path = Path(src).expanduser()
    if path.is_dir():
        shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__"))
    elif path.is_file():
        dest.mkdir(parents=True)
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.extractall(dest, filter="data")  # refuses absolute paths, .., devices, outside links
        except (tarfile.TarError, OSError) as exc:
            reason = str(exc).splitlines()[0].rstrip(":")  # tarfile lists every method it tried
            raise EndpointError(f"cannot extract {path} ({reason}): it is not a readable tar.gz; "
                                "pass a model.tar.gz written by `dogbreed train`") from None
    else:
        raise EndpointError(f"model data {path} does not exist: pass --model-data PATH or train first")
    if not (dest / CONFIG_FILE).is_file():
        raise EndpointError(f"{model_data} holds no {CONFIG_FILE}: not a dogbreed model artifact "
                            "(expected model.pth, model_config.json, labels.json at its root)")
    code = dest / "code"
    if not (code / "inference.py").is_file():
        code.mkdir(exist_ok=True)
        shutil.copy2(scripts_dir() / "inference.py", code / "inference.py")
    return dest
