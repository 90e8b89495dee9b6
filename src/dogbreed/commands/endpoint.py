"""`dogbreed deploy | predict | undeploy | endpoints | serve`: the endpoint lifecycle.

`predict` against a local endpoint imports only the stdlib HTTP client (no torch, no boto3),
so the command costs tens of milliseconds on top of the model's own time.
"""

from __future__ import annotations

import click

from dogbreed.commands.complete import complete_endpoints
from dogbreed.serving.limits import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_WAIT_MS, IMAGE_SUFFIXES, MAX_BODY_BYTES

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@click.command()
@click.option("--model-data", default=None, metavar="PATH|s3://URI",
              help="model.tar.gz (or an extracted model folder, locally). [default: the model of the last train]")
@click.option("--name", default=None, help="Endpoint name. [default: dogbreed-<timestamp>]")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="Local: port on 127.0.0.1.")
@click.option("--max-batch-size", type=click.IntRange(1, 256), default=DEFAULT_MAX_BATCH_SIZE, show_default=True,
              help="Local: most images per model call when requests arrive together.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=DEFAULT_MAX_WAIT_MS, show_default=True,
              help="Local: how long a batch waits for requests that are still decoding.")
@click.option("--trust-code", is_flag=True,
              help="Local: serve an archive that brings its own code/ (the server runs it on this machine).")
@click.option("--instance-type", default=None,
              help="SageMaker real-time instance type. [default: ml.m5.large, or `inference_instance_type` in config]")
@click.option("--serverless", is_flag=True, help="SageMaker: a serverless endpoint instead of an instance.")
@click.option("--memory", type=click.IntRange(1024, 6144), default=4096, show_default=True,
              help="SageMaker serverless memory in MB (1024-6144, steps of 1024).")
@click.option("--max-concurrency", type=click.IntRange(1, 200), default=5, show_default=True,
              help="SageMaker serverless: concurrent invocations.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=600, show_default=True,
              help="Seconds to wait for the endpoint to turn healthy.")
@click.option("--min-instances", type=int, default=None, metavar="N",
              help="SageMaker real-time autoscaling: fewest instances. [default: 1 with --max-instances]")
@click.option("--max-instances", type=int, default=None, metavar="M",
              help="SageMaker real-time autoscaling: most instances (Application Auto Scaling). [default: no scaling]")
@click.option("--target-invocations", type=float, default=None, metavar="K",
              help="SageMaker real-time autoscaling: requests per instance per minute at which to add one.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", callback=lambda ctx, param, v: key_values(v),
              help="SageMaker: set an environment variable of the model's container, over what deploy chooses "
                   "for the instance type (e.g. SAGEMAKER_TS_BATCH_SIZE=1 puts latency first on an AMX "
                   "ml.c7i; DOGBREED_MIXED_PRECISION=off serves fp32). Repeatable.")
@click.option("--auto-delete-after", default=None, metavar="DURATION",
              help="e.g. 2h. Local: the server stops itself then. SageMaker: the endpoint is tagged to expire "
                   "and `dogbreed cleanup --expired --yes` deletes it. [default: never]")
@click.pass_obj
def deploy(app, model_data, name, port, max_batch_size, max_wait_ms, trust_code, instance_type, serverless, memory,
           max_concurrency, timeout_s, min_instances, max_instances, target_invocations, env, auto_delete_after):
    """Deploy a trained model behind an endpoint and remember it for `predict`.

    \b
    Examples:
      dogbreed deploy                                  # local server on 127.0.0.1:8080
      dogbreed deploy --port 8081 --max-batch-size 8
      dogbreed --backend sagemaker deploy --serverless --memory 4096 --max-concurrency 5
      dogbreed --backend sagemaker deploy --min-instances 1 --max-instances 4 --target-invocations 100
      dogbreed --backend sagemaker deploy --instance-type ml.c7i.large --env SAGEMAKER_TS_MAX_BATCH_DELAY=10
    """
    from dogbreed.backends.base import Autoscaling, EndpointSpec
    from dogbreed.settings import parse_duration
    from dogbreed.workflows import endpoints as workflow

    spec = EndpointSpec(model_data=model_data or workflow.recorded_model(app), name=name, port=port,
                        max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, trust_code=trust_code,
                        instance_type=instance_type, env=env,
                        serverless=serverless, memory_mb=memory, max_concurrency=max_concurrency, timeout_s=timeout_s,
                        auto_delete_after_s=parse_duration(auto_delete_after, "--auto-delete-after")
                        if auto_delete_after else None)
    if (min_instances, max_instances, target_invocations) != (None, None, None):
        if max_instances is None or target_invocations is None:
            raise click.UsageError("autoscaling needs --max-instances and --target-invocations "
                                   "(and optionally --min-instances)")
        spec.autoscaling = Autoscaling(1 if min_instances is None else min_instances, max_instances,
                                       target_invocations)
    desc = workflow.deploy(app, spec, log=click.echo)
    click.echo(f"endpoint {desc.name} {desc.status}{' at ' + desc.url if desc.url else ''}")
    click.echo("try: dogbreed predict IMAGE...")


def key_values(items) -> dict:
    """KEY=VALUE strings -> dict; a malformed one is a usage error naming it."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key):
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. --env SAGEMAKER_TS_BATCH_SIZE=16)",
                                     param_hint="--env")
        out[key] = value
    return out


def image_file(path):
    """`path` if it is a regular file of at most MAX_BODY_BYTES, else a ConfigError naming what it is
    (checked with stat, before anything is read: a FIFO would block, a 200 MB file would be read whole)."""
    import errno
    import os
    import stat

    from dogbreed.errors import ConfigError

    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path} is a symbolic link loop: point it at an image file") from None
        if exc.errno == errno.ENOENT:
            broken = " (a symbolic link to nothing)" if os.path.islink(path) else ""
            raise ConfigError(f"{path} does not exist{broken}: pass image files or folders") from None
        raise ConfigError(f"cannot read {path} ({exc.strerror}): pass image files or folders") from None
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device"}
    kind = next((name for test, name in kinds.items() if test(st.st_mode)), None)
    if kind:
        raise ConfigError(f"{path} is {kind}, not an image file: pass image files or folders")
    return path


def _expand(paths) -> list:
    from pathlib import Path

    from dogbreed.errors import ConfigError

    files = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {p}")
            files.extend(found)
        else:
            files.append(image_file(p))
    return files


def _read_image(path) -> bytes:
    """The file's bytes, refused by size before reading."""
    from dogbreed.errors import EndpointError

    size = path.stat().st_size
    if size > MAX_BODY_BYTES:
        raise EndpointError(f"{size} bytes is over the {MAX_BODY_BYTES >> 20} MB request limit: resize the image")
    return path.read_bytes()


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True, help="Breeds shown per image.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: one JSON document.")
@click.option("--raw", is_flag=True, help="The model's logits (one per class) instead of top-k breeds.")
@click.option("--endpoint", "endpoint_name", default=None, metavar="NAME", shell_complete=complete_endpoints,
              help="Endpoint to ask. [default: the one `dogbreed deploy` recorded]")
@click.pass_obj
def predict(app, images, top_k, as_json, raw, endpoint_name):
    """Send IMAGES (files or folders) to the endpoint and print the top-k breeds.

    \b
    Examples:
      dogbreed predict dog.jpg
      dogbreed predict photos/ --top-k 3 --json
      dogbreed predict dog.jpg --raw
    """
    import json

    from dogbreed.errors import EndpointError
    from dogbreed.serving.client import WrongEndpoint
    from dogbreed.workflows.endpoints import resolve_endpoint

    files = _expand(images)
    backend, name, url = resolve_endpoint(app, endpoint_name)
    conn = backend.connect_endpoint(name, url)
    accept = "application/json; output=logits" if raw else f"application/json; top_k={top_k}"
    results, failed = [], 0
    try:
        for path in files:
            try:
                data = _read_image(path)
                body, _ = conn.invoke(data, CONTENT_TYPES.get(path.suffix.lower(), "application/x-image"), accept)
                doc = json.loads(body)
                result = {"image": str(path), **({"logits": doc["logits"][0]} if raw
                                                 else {"predictions": doc["predictions"][0]})}
            except EndpointError as exc:
                if isinstance(exc, WrongEndpoint):
                    raise
                if "cannot reach" in str(exc) or "closed the connection" in str(exc):
                    if url is not None:  # we took the recorded URL on trust: now ask why it is down
                        backend.connect_endpoint(name).close()
                    raise
                failed += 1
                result = {"image": str(path), "error": str(exc)}
            results.append(result)
            if not as_json:
                _print_result(result)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(results, indent=2))
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} images failed")


def _print_result(result: dict) -> None:
    import json

    if "error" in result:
        click.echo(f"{result['image']}: error: {result['error']}", err=True)
    elif "logits" in result:
        click.echo(json.dumps(result))
    else:
        click.echo(result["image"])
        for i, p in enumerate(result["predictions"], 1):
            click.echo(f"  {i}. {p['breed']:<32} {p['probability'] * 100:6.2f}%")


@click.command()
@click.argument("name", required=False, shell_complete=complete_endpoints)
@click.pass_obj
def undeploy(app, name):
    """Stop and delete an endpoint (default: the recorded one).

    Local: the server process stops and its port is freed. SageMaker: the endpoint, its
    config and its model are deleted.
    """
    from dogbreed.workflows.endpoints import undeploy as delete

    target, backend_name = delete(app, name)
    click.echo(f"endpoint {target} deleted ({backend_name})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def endpoints(app, as_json):
    """List the endpoints of the current backend and their status (* = recorded for predict)."""
    import datetime
    import json

    from dogbreed.workflows.endpoints import list_endpoints

    found, current, problem = list_endpoints(app)
    if problem:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in found], indent=2))
        return
    if not found:
        click.echo(f"no {app.backend_choice} endpoints; create one with `dogbreed deploy`")
        return
    click.echo(f"  {'NAME':<40} {'STATUS':<13} {'WHERE':<24} CREATED")
    for d in found:
        when = datetime.datetime.fromtimestamp(d.created).strftime("%Y-%m-%d %H:%M") if d.created else "-"
        where = d.url or d.extra.get("instance_type") or ("serverless" if d.extra.get("serverless") else "")
        mark = "*" if d.name == current else " "
        scaling = d.extra.get("autoscaling")
        click.echo(f"{mark} {d.name:<40} {d.status:<13} {where:<24} {when}"
                   + (f"  autoscaling {scaling['min_instances']}-{scaling['max_instances']} instances at "
                      f"{scaling['target_invocations']:g} invocations/instance/min" if scaling else "")
                   + (f"  ({d.failure_reason})" if d.failure_reason else ""))


@click.command()
@click.argument("model", required=False, metavar="[MODEL]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--max-batch-size", type=click.IntRange(1, 256), default=DEFAULT_MAX_BATCH_SIZE, show_default=True,
              help="Most images per model call.")
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=DEFAULT_MAX_WAIT_MS, show_default=True,
              help="How long a batch waits for requests that are still decoding.")
@click.option("--allow-host", multiple=True, metavar="NAME",
              help="Also answer requests whose Host header is NAME ('*': any). [default: the --host address; "
                   "loopback names for 127.0.0.1]")
@click.option("--trust-code", is_flag=True, help="Serve an archive that brings its own code/ (it runs here).")
@click.pass_obj
def serve(app, model, host, port, max_batch_size, max_wait_ms, allow_host, trust_code):
    """Run the model server in the foreground (Ctrl-C stops it).

    MODEL is a model.tar.gz or an extracted model folder [default: the model of the last train].
    Same server and API as a local `deploy`: GET /ping, POST /invocations.

    \b
    Example:
      dogbreed serve .dogbreed/jobs/dogbreed-train-.../output/model.tar.gz --port 8080
    """
    import tempfile
    from pathlib import Path

    from dogbreed.errors import EndpointError
    from dogbreed.serving.errors import ModelLoadError
    from dogbreed.serving.model_dir import prepare_model_dir
    from dogbreed.serving.server import serve as run_server
    from dogbreed.workflows.endpoints import recorded_model

    with tempfile.TemporaryDirectory(prefix="dogbreed-serve-") as tmp:
        model_dir = prepare_model_dir(model or recorded_model(app), Path(tmp) / "model", trust_code=trust_code)
        try:
            run_server(model_dir, host=host, port=port, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                       allowed_hosts=allow_host, log=click.echo)
        except ModelLoadError as exc:
            raise EndpointError(str(exc)) from None
