"""Which dataset a job reads, and recording datasets as the default --data."""

from __future__ import annotations

from pathlib import Path

from dogbreed.workflows import Session


def resolve_data(session: Session, data: str | None) -> str:
    """--data, else the dataset recorded for the chosen backend (a folder locally, an S3 URI on SageMaker)."""
    return data or session.backend().default_data()


def record_local_dataset(session: Session, path: str | Path) -> str:
    """Remember a local dataset folder as the default --data; returns its absolute path."""
    where = str(Path(path).absolute())
    session.workspace.update(dataset=where)
    return where


def recorded_local_dataset(session: Session, path: str | None, verb: str) -> str:
    from dogbreed.errors import StateError

    found = path or session.workspace.get("dataset")
    if not found:
        raise StateError(f"no PATH given and no dataset recorded; pass a folder, e.g. `dogbreed data {verb} "
                         "data/sample`")
    return found


def stage_dataset(session: Session, path: str | None, **options):
    """Copy a local dataset to where remote jobs read data; the result's URI becomes their default --data."""
    backend = session.backend_with("stage_dataset")
    result = backend.require("stage_dataset")(recorded_local_dataset(session, path, "upload"), **options)
    session.workspace.update(**{backend.dataset_key: result.uri})
    return result
