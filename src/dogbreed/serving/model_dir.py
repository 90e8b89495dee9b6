"""A model artifact (model.tar.gz or an extracted folder) made ready to serve, as a local deploy
and `dogbreed serve` need it: extracted safely, checked, with code/inference.py.

Trust boundary: the server imports `code/inference.py` (SageMaker's contract), so an archive that
brings its own code runs that code on this machine, and `torch.load(weights_only=True)` protects
nothing then. An archive whose code/ is anything but the project's own handler is refused unless
the caller trusts it (`--trust-code`). Extraction stops at `max_bytes` (MAX_MODEL_BYTES, 512 MiB by
default, $DOGBREED_MAX_MODEL_MB): a small tar.gz of zeros can expand a thousandfold.
"""

from __future__ import annotations

import filecmp
import shutil
import tarfile
from pathlib import Path

from dogbreed.errors import EndpointError
from dogbreed.serving.limits import ENV_MAX_MODEL_MB, MAX_MODEL_BYTES


def foreign_code(model_dir: Path) -> list[str]:
    """Files under model_dir/code that are not the project's own inference.py (relative paths)."""
    from dogbreed.job_folder import scripts_dir

    code = model_dir / "code"
    if not code.is_dir():
        return []
    ours = scripts_dir() / "inference.py"
    found = []
    for path in sorted(code.rglob("*")):
        if path.is_dir() and path.name == "__pycache__":
            continue
        rel = path.relative_to(model_dir)
        if path.is_symlink() or not path.is_dir() and not (rel.as_posix() == "code/inference.py"
                                                            and filecmp.cmp(path, ours, shallow=False)):
            found.append(rel.as_posix())
    return found


def _check_size(tar: tarfile.TarFile, path: Path, max_bytes: int) -> None:
    total = 0
    for member in tar:  # headers only: the sizes are declared before the data
        total += max(member.size, 0)
        if total > max_bytes:
            raise EndpointError(f"{path} expands to more than {max_bytes >> 20} MB: not a model artifact "
                                f"(raise the cap with ${ENV_MAX_MODEL_MB} if it really is)")


def prepare_model_dir(model_data: str, dest: Path, *, trust_code: bool = False,
                      max_bytes: int = MAX_MODEL_BYTES) -> Path:
    """Extract (or copy) the artifact to `dest` and add code/inference.py if it has none; refuse
    foreign code unless `trust_code`, and archives that expand past `max_bytes`."""
    from dogbreed.job_folder import scripts_dir
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
                _check_size(tar, path, max_bytes)
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
    foreign = foreign_code(dest)
    if foreign and not trust_code:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise EndpointError(f"{model_data} brings its own code ({shown}), which the server would run on this "
                            "machine: deploy it only if you trust its author, with --trust-code")
    code = dest / "code"
    if not (code / "inference.py").is_file():
        code.mkdir(exist_ok=True)
        shutil.copy2(scripts_dir() / "inference.py", code / "inference.py")
    return dest
