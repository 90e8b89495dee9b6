"""`dogbreed stop [JOB]`: stop a training or tuning job, locally or on SageMaker."""

from __future__ import annotations

import click

from dogbreed.commands.complete import complete_jobs


@click.command()
@click.argument("job", required=False, shell_complete=complete_jobs)
@click.pass_obj
def stop(app, job):
    """Stop JOB, a training or tuning job (default: the last one that is running).

    Local: its whole process group gets SIGTERM (SIGKILL 10 s later) and the job is recorded
    Stopped; a stopped tuning job continues with `dogbreed tune --resume`. SageMaker:
    StopTrainingJob / StopHyperParameterTuningJob (SageMaker stops running trials too).

    \b
    Examples:
      dogbreed stop                                    # the last job, if it runs
      dogbreed stop dogbreed-train-20261129-120000-ab12
      dogbreed --backend sagemaker stop dbhpo-261129-120000-ab12
    """
    from dogbreed.workflows.operations import TRAINING, stop_job

    kind, found = stop_job(app, job)
    what = "training job" if kind == TRAINING else "tuning job"
    reason = f" ({found.failure_reason})" if found.failure_reason else ""
    click.echo(f"{what} {found.name} [{found.backend}]: {found.status}{reason}")
