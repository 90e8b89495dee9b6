"""`dogbreed report [JOB]`: a self-contained HTML report of a training or tuning job."""

from __future__ import annotations

import click


@click.command()
@click.argument("job", required=False)
@click.option("--out", default=None, metavar="DIR",
              help="Folder for report.html and its PNGs. [default: <workspace>/reports/JOB]")
@click.pass_obj
def report(app, job, out):
    """Write an HTML report of JOB and print its path.

    A training job gets loss curves from the debugger tensors, rule results, system usage,
    step times, test metrics and the confusion matrix; a tuning job gets its trials table
    and plots. SageMaker jobs' outputs are downloaded from S3 first.

    \b
    Examples:
      dogbreed report                                   # the last training job
      dogbreed report dbhpo-261129-120000-ab12       # a tuning job
    """
    from dogbreed.workflows.reports import write_report

    click.echo(str(write_report(app, job, out)))
