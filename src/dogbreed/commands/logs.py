"""`dogbreed logs JOB [--follow]`: a training job's log (local logs.txt, or CloudWatch Logs)."""

from __future__ import annotations

import click

from dogbreed.commands.complete import complete_training_jobs


@click.command()
@click.argument("job", required=False, shell_complete=complete_training_jobs)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.pass_obj
def logs(app, job, follow):
    """Print the log of JOB, a training job or tuning trial (default: the last training job).

    Local jobs: <workspace>/jobs/JOB/logs.txt. SageMaker jobs: every stream of the job in
    the CloudWatch Logs group /aws/sagemaker/TrainingJobs.

    \b
    Examples:
      dogbreed logs                                    # the last training job
      dogbreed logs dbhpo-261129-120000-ab12-003 --follow
    """
    from dogbreed.workflows.operations import job_logs

    try:
        for line in job_logs(app, job, follow):
            click.echo(line)
    except KeyboardInterrupt:  # leaving --follow stops the printing, never the job
        raise SystemExit(130) from None
