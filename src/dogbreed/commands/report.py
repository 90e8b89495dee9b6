"""`dogbreed report [JOB]`: a self-contained HTML report of a training or tuning job."""

from __future__ import annotations

import click


@click.command()
@click.argument("job", required=False)
@click.option("--out", default=None, metavar="DIR",
              help="Folder for report.html and its PNGs. [default: <workspace>/reports/JOB]")
@click.option("--json", "as_json", is_flag=True, help="Print {\"job\": ..., \"report\": PATH} as JSON.")
@click.pass_obj
def report(app, job, out, as_json):
    """Write an HTML report of JOB and print its path.

    A training job gets loss curves from the debugger tensors, rule results, system usage,
    step times, test metrics and the confusion matrix; a tuning job gets its trials table
    and plots. SageMaker jobs' outputs are downloaded from S3 first.

    \b
    Examples:
      dogbreed report                                   # the last training job
      dogbreed report dogbreed-train-20261129-120000-ab12  # a training job (`dogbreed jobs` lists them)
      dogbreed report dbhpo-261129-120000-ab12          # a tuning job (`dogbreed jobs --tuning`)
    """
    from dogbreed.workflows.reports import write_report

    path = write_report(app, job, out)
    if as_json:
        from dogbreed.commands.options import emit_json

        emit_json({"job": job or app.workspace.get("last_training_job", {}).get("name"), "report": str(path)})
        return
    click.echo(str(path))
