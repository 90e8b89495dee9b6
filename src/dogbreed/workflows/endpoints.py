"""Endpoints: which model to deploy, which endpoint `predict` asks, and what the workspace remembers."""

from __future__ import annotations

from dogbreed.backends.base import EndpointDescription, EndpointSpec, LogSink
from dogbreed.names import check_name
from dogbreed.workflows import Session


def recorded_model(session: Session) -> str:
    """The model artifact of the last completed training job."""
    model = session.workspace.require("model_data",
                                      "train a model first (`dogbreed train ...`) or pass --model-data")
    return model["uri"]


def deploy(session: Session, spec: EndpointSpec, log: LogSink | None = None) -> EndpointDescription:
    """Deploy on the chosen backend and remember the endpoint for `predict`."""
    session.workspace.state()  # a corrupt state.json stops us here, before a server runs unrecorded
    spec = _with_origin(session, spec)
    backend = session.backend()
    if spec.autoscaling:
        backend.require("autoscale_endpoint")  # refused before anything starts where there is no such thing
    if spec.env and backend.name == "local":
        from dogbreed.errors import ConfigError

        raise ConfigError("--env sets the SageMaker container's environment; the local server is tuned with "
                          "--max-batch-size and --max-wait-ms")
    desc = backend.deploy_endpoint(spec, log=log)
    session.workspace.update(endpoint={"name": desc.name, "backend": backend.name, "url": desc.url,
                                       "model_data": spec.model_data,
                                       **{k: desc.extra[k] for k in ("pid", "port") if k in desc.extra}})
    return desc


def _with_origin(session: Session, spec: EndpointSpec) -> EndpointSpec:
    """The recorded model's training job, and its report (`dogbreed report`) when one was written."""
    from dataclasses import replace

    recorded = session.workspace.get("model_data") or {}
    if spec.job or recorded.get("uri") != spec.model_data:
        return spec
    report = session.workspace.root / "reports" / recorded["job"] / "report.html"
    return replace(spec, job=recorded["job"], report=str(report) if report.is_file() else spec.report)


def resolve_endpoint(session: Session, name: str | None) -> tuple:
    """(backend, name, url) of the endpoint to ask: `name` on the chosen backend, else the recorded one."""
    from dogbreed.errors import StateError

    recorded = session.workspace.get("endpoint") or {}
    if name and name != recorded.get("name"):
        return session.backend(), check_name(name, "endpoint name"), None
    if not recorded:
        live = [d.name for d in session.backend().list_endpoints() if d.status == "InService"]
        if live:
            raise StateError(f"no endpoint recorded for predict; {', '.join(live)} "
                             f"{'is' if len(live) == 1 else 'are'} InService: pass --endpoint {live[0]}")
        raise StateError("no endpoint deployed: run `dogbreed deploy` (or pass --endpoint NAME)")
    return session.backend(recorded["backend"]), recorded["name"], recorded.get("url")


def undeploy(session: Session, name: str | None) -> tuple[str, str]:
    """Delete `name` (default: the recorded endpoint); returns (name, backend name). With NAME, a
    corrupt state.json does not stand in the way: the endpoint's own record says where it runs."""
    from dogbreed.errors import StateError

    try:
        recorded = session.workspace.get("endpoint") or {}
    except StateError:
        if name is None:
            raise
        recorded = None
    if name is None and not recorded:
        raise StateError("no endpoint recorded: pass NAME (`dogbreed endpoints` lists them)")
    target = check_name(name or recorded["name"], "endpoint name")
    mine = recorded is not None and target == recorded.get("name")
    backend = session.backend(recorded["backend"] if mine else None)
    backend.delete_endpoint(target)
    if mine:
        session.workspace.update(endpoint=None)
    return target, backend.name


def list_endpoints(session: Session) -> tuple[list[EndpointDescription], str | None, str | None]:
    """Endpoints of the chosen backend, the name of the one recorded for `predict`, and what is wrong
    with the workspace state if it cannot be read (the endpoints are listed all the same)."""
    from dogbreed.errors import StateError

    try:
        current, problem = (session.workspace.get("endpoint") or {}).get("name"), None
    except StateError as exc:
        current, problem = None, str(exc)
    return session.backend().list_endpoints(), current, problem


def find_leftovers(session: Session, *, expired_only: bool = False, prefix: str | None = None):
    """(backend, resources): billable resources of the project on a backend that has any to clean up."""
    backend = session.backend_with("find_leftovers")
    recorded = session.workspace.get("endpoint") or {}
    remembered = (recorded["name"],) if recorded.get("backend") == backend.name else ()
    return backend, backend.require("find_leftovers")(prefix=prefix, endpoints=remembered, expired_only=expired_only)


def delete_leftovers(session: Session, backend, resources: list):
    """Delete them; yields (resource, error or None) and forgets a recorded endpoint that went."""
    recorded = session.workspace.get("endpoint") or {}
    for resource, error in backend.require("delete_leftovers")(resources):
        if error is None and resource.kind == "endpoint" and resource.name == recorded.get("name"):
            session.workspace.update(endpoint=None)
        yield resource, error
