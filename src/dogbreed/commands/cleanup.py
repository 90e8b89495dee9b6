"""`dogbreed cleanup`: delete the project's SageMaker endpoints, endpoint configs and models."""

from __future__ import annotations

import click


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@click.option("--expired", is_flag=True,
              help="Only endpoints past their `deploy --auto-delete-after` time (with their config and models).")
@click.option("--prefix", default=None,
              help="Name prefix of the project's resources. [default: the `prefix` setting, dogbreed]")
@click.pass_obj
def cleanup(app, yes, expired, prefix):
    """List the project's SageMaker endpoints, endpoint configs and models, and delete them.

    Endpoints are billed by the hour whether they serve requests or not; this is the
    command that makes sure nothing is left running. Asks before deleting unless --yes.
    Always talks to SageMaker (local endpoints cost nothing: `dogbreed undeploy` stops them).

    \b
    Examples:
      dogbreed cleanup                   # list, then ask
      dogbreed cleanup --expired --yes   # from cron: endpoints whose auto-delete time has passed
    """
    import botocore.exceptions

    from dogbreed.backends.sagemaker.cleanup import delete_resources, find_resources
    from dogbreed.backends.sagemaker.s3 import aws_error
    from dogbreed.backends.sagemaker.session import AwsContext
    from dogbreed.errors import EndpointError

    ctx = AwsContext(app.settings.aws())
    prefix = prefix or app.settings.prefix
    recorded = app.workspace.get("endpoint") or {}
    remembered = (recorded.get("name"),) if recorded.get("backend") == "sagemaker" else ()
    sm = ctx.boto_session.client("sagemaker")
    try:
        resources = find_resources(sm, prefix, remembered, expired_only=expired)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise aws_error(exc, f"listing SageMaker resources in {ctx.region}", ctx.settings.bucket or "-") from None
    what = "expired endpoints" if expired else f"resources named {prefix}*"
    if not resources:
        click.echo(f"nothing to clean up: no {what} in {ctx.region}")
        return
    click.echo(f"{len(resources)} SageMaker {what} in {ctx.region}:")
    for r in resources:
        click.echo(f"  {r}")
    if not yes and not click.confirm(f"Delete these {len(resources)}?", default=False):
        click.echo("nothing deleted")
        return
    failed = []
    for r, error in delete_resources(sm, resources):
        click.echo(f"  {'deleted' if error is None else 'FAILED '} {r.kind} {r.name}" + (f": {error}" if error else ""))
        if error:
            failed.append(r)
        elif r.kind == "endpoint" and r.name in remembered:
            app.workspace.update(endpoint=None)
    if failed:
        raise EndpointError(f"{len(failed)} of {len(resources)} could not be deleted (see above); "
                            "run `dogbreed cleanup` again, or delete them in the SageMaker console")
    click.echo(f"deleted {len(resources)}")
