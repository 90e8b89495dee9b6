"""Bulk prediction: a folder (local) or an S3 prefix (SageMaker Batch Transform) scored into JSON Lines."""

from __future__ import annotations

from dogbreed.backends.base import BatchProgress, BatchResult, BatchSpec, LogSink
from dogbreed.workflows import Session


def batch_predict(session: Session, spec: BatchSpec, progress: BatchProgress | None = None,
                  log: LogSink | None = None) -> BatchResult:
    """Score `spec.source` on the chosen backend (the model of the last train unless `spec.model_data`)."""
    from dogbreed.workflows.endpoints import recorded_model

    backend = session.backend()
    run = backend.require("batch_predict")
    if not spec.model_data:
        spec.model_data = recorded_model(session)
    return run(spec, progress=progress, log=log)
