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
    from dogbreed.errors import EndpointError
    from dogbreed.workflows.endpoints import delete_leftovers, find_leftovers

    backend, resources = find_leftovers(app, expired_only=expired, prefix=prefix)
    what = "expired endpoints" if expired else f"resources named {prefix or app.settings.prefix}*"
    if not resources:
        click.echo(f"nothing to clean up: no {what} in {backend.where}")
        return
    click.echo(f"{len(resources)} SageMaker {what} in {backend.where}:")
    for r in resources:
        click.echo(f"  {r}")
    if not yes and not click.confirm(f"Delete these {len(resources)}?", default=False):
        click.echo("nothing deleted")
        return
    failed = []
    for r, error in delete_leftovers(app, backend, resources):
        click.echo(f"  {'deleted' if error is None else 'FAILED '} {r.kind} {r.name}" + (f": {error}" if error else ""))
        if error:
            failed.append(r)
    if failed:
        raise EndpointError(f"{len(failed)} of {len(resources)} could not be deleted (see above); "
                            "run `dogbreed cleanup` again, or delete them in the SageMaker console")
    click.echo(f"deleted {len(resources)}")
