"""A training job's log from CloudWatch Logs, where SageMaker writes it: the log group
/aws/sagemaker/TrainingJobs, one stream per instance (`JOB/algo-N-EPOCH`). Plain boto3: no SDK import."""

from __future__ import annotations

import time
from typing import Callable, Iterator

from dogbreed.errors import StateError

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
POLL_S = 5.0


def job_streams(logs, job: str) -> list[str]:
    """The job's log streams, by name (one per instance; none before the first instance starts)."""
    names, token = [], None
    while True:
        kwargs = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{job}/"}
        if token:
            kwargs["nextToken"] = token
        try:
            resp = logs.describe_log_streams(**kwargs)
        except logs.exceptions.ResourceNotFoundException:  # no SageMaker job has logged in this region yet
            return []
        names += [s["logStreamName"] for s in resp.get("logStreams", [])]
        token = resp.get("nextToken")
        if not token:
            return sorted(names)


def _new_events(logs, stream: str, tokens: dict[str, str]) -> Iterator[str]:
    """Events of `stream` after the ones read before (`tokens` remembers where each stream stopped)."""
    while True:
        kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
        if stream in tokens:
            kwargs["nextToken"] = tokens[stream]
        resp = logs.get_log_events(**kwargs)
        for event in resp.get("events", []):
            yield event["message"].rstrip("\n")
        token = resp.get("nextForwardToken")
        if token is None or token == tokens.get(stream):  # the same token again: nothing more for now
            return
        tokens[stream] = token


def log_lines(logs, job: str, *, follow: bool = False, finished: Callable[[], bool] = lambda: True,
              poll_s: float = POLL_S, sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """Every stream's lines (prefixed `[algo-N]` when there are several); with `follow`, new lines
    every `poll_s` until `finished()` says the job ended. StateError when the job has no log yet
    and is not followed."""
    tokens: dict[str, str] = {}
    while True:
        done = finished() if follow else True  # asked before reading, so no line written before the end is lost
        streams = job_streams(logs, job)
        if not streams and not follow:
            raise StateError(f"job {job} has no logs yet in CloudWatch ({LOG_GROUP}); its instances log once "
                             f"they start: try again later, or follow with `dogbreed logs {job} --follow`")
        for stream in streams:
            host = stream.split("/", 1)[1].rsplit("-", 1)[0] if len(streams) > 1 else ""
            for line in _new_events(logs, stream, tokens):
                yield f"[{host}] {line}" if host else line
        if done:
            return
        sleep(poll_s)
