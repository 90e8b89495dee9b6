"""The `dogbreed` command line. Subcommands load lazily: `dogbreed --help` imports neither
torch nor sagemaker (click docs, "Lazily Loading Subcommands")."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import click

from dogbreed import __version__
from dogbreed.errors import DogbreedError

# command name -> "module:attribute"; the module is imported only when the command runs
# (or when --help lists short help, which is why command modules import nothing heavy).
COMMANDS = {
    "data": "dogbreed.commands.data:data",
    "train": "dogbreed.commands.train:train",
    "report": "dogbreed.commands.report:report",
    "tune": "dogbreed.commands.tune:tune",
    "deploy": "dogbreed.commands.endpoint:deploy",
    "predict": "dogbreed.commands.endpoint:predict",
    "batch": "dogbreed.commands.batch:batch",
    "plan": "dogbreed.commands.plan:plan",
    "undeploy": "dogbreed.commands.endpoint:undeploy",
    "endpoints": "dogbreed.commands.endpoint:endpoints",
    "serve": "dogbreed.commands.endpoint:serve",
    "jobs": "dogbreed.commands.jobs:jobs",
    "stop": "dogbreed.commands.stop:stop",
    "logs": "dogbreed.commands.logs:logs",
    "config": "dogbreed.commands.config:config",
    "cleanup": "dogbreed.commands.cleanup:cleanup",
    "demo": "dogbreed.commands.demo:demo",
}


class LazyGroup(click.Group):
    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DogbreedError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            line = aws_refusal(exc)
            if line is None:
                raise
            raise click.ClickException(line) from None


def aws_refusal(exc: Exception) -> str | None:
    """One line for an error raised by AWS (botocore) or by the SageMaker SDK's own checks (a
    ValueError raised inside `sagemaker`), None for anything else (a bug: its traceback is useful)."""
    import sys
    import traceback
    from pathlib import PurePath

    botocore = sys.modules.get("botocore.exceptions")  # loaded only if AWS was used
    if botocore is not None and isinstance(exc, (botocore.ClientError, botocore.BotoCoreError)):
        err = (getattr(exc, "response", None) or {}).get("Error") or {}
        op = getattr(exc, "operation_name", None)
        detail = " ".join((f"{err.get('Code')}: {err.get('Message')}" if err else str(exc)).split())
        return f"AWS {'refused ' + op if op else 'call failed'}: {detail}"
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, ValueError) and frames and \
            {"sagemaker", "sagemaker_core"} & set(PurePath(frames[-1].filename).parts):
        return f"the SageMaker SDK refused the request: {' '.join(str(exc).split())}"
    return None


@dataclass
class App:
    """What every command gets through `click.pass_obj`."""

    workspace_path: str | None = None
    backend_name: str | None = None
    _backends: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)  # dogbreed.settings keys given as flags (+ "config")
    _settings: object = None

    def set_flag(self, key: str, value) -> None:
        self.flags[key] = value
        self._settings = None

    @property
    def settings(self):
        """flags > environment > dogbreed.toml > defaults (see dogbreed.settings)."""
        if self._settings is None:
            from dogbreed.settings import Settings

            self._settings = Settings.resolve({"backend": self.backend_name, **self.flags})
        return self._settings

    @property
    def workspace(self):
        from dogbreed.workspace import Workspace

        return Workspace.resolve(self.workspace_path)

    @property
    def backend_choice(self) -> str:
        return self.settings.backend

    def backend(self, name: str | None = None):
        """The backend called `name` (e.g. one a recorded job ran on), else the chosen one; built once."""
        from dogbreed.backends import get_backend

        name = name or self.backend_choice
        if name not in self._backends:
            self._backends[name] = get_backend(name, self.workspace, self.settings)
        return self._backends[name]

    def backend_with(self, capability: str):
        """The chosen backend if it has `capability`, else the first backend that has it."""
        from dogbreed.backends import backend_class, backend_names

        if backend_class(self.backend_choice).supports(capability):
            return self.backend()
        return self.backend(next((n for n in backend_names() if backend_class(n).supports(capability)),
                                 self.backend_choice))


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dogbreed")
@click.option("--workspace", envvar="DOGBREED_WORKSPACE", default=None, metavar="DIR",
              help="Where state and local jobs live. [default: ./.dogbreed]")
@click.option("--backend", type=click.Choice(["local", "sagemaker"]), default=None,
              help="Where jobs and endpoints run. [default: local, or $DOGBREED_BACKEND, or dogbreed.toml]")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="Project config file. [default: $DOGBREED_CONFIG, else ./dogbreed.toml if present]")
@click.option("--profile", default=None, help="AWS profile. [default: $AWS_PROFILE, or dogbreed.toml]")
@click.option("--region", default=None, help="AWS region. [default: $AWS_REGION/$AWS_DEFAULT_REGION, dogbreed.toml, "
              "or the profile's]")
@click.option("--role", default=None, metavar="ARN", help="SageMaker execution role. [default: $DOGBREED_ROLE, "
              "or `role` in dogbreed.toml]")
@click.option("--bucket", default=None, help="S3 bucket. [default: $DOGBREED_BUCKET, dogbreed.toml, or the "
              "SageMaker default bucket]")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="Log jobs and tuning trials to MLflow (sqlite:///mlflow.db, http://host:5000, a SageMaker "
              "MLflow ARN; needs dogbreed[mlflow]). [default: $DOGBREED_TRACKING_URI, dogbreed.toml, or off]")
@click.pass_context
def cli(ctx, workspace, backend, config_file, profile, region, role, bucket, tracking_uri):
    """Fine-tune, tune, debug, deploy and query a dog-breed classifier,
    on this machine (default) or on Amazon SageMaker."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    flags = {"config": config_file, "profile": profile, "region": region, "role": role, "bucket": bucket,
             "tracking_uri": tracking_uri}
    ctx.obj = App(workspace, backend, flags={k: v for k, v in flags.items() if v is not None})


def main() -> None:
    cli(prog_name="dogbreed")


if __name__ == "__main__":
    main()
