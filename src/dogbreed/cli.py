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
    "jobs": "dogbreed.commands.jobs:jobs",
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


@dataclass
class App:
    """What every command gets through `click.pass_obj`."""

    workspace_path: str | None = None
    backend_name: str | None = None
    _backends: dict = field(default_factory=dict)

    @property
    def workspace(self):
        from dogbreed.workspace import Workspace

        return Workspace.resolve(self.workspace_path)

    @property
    def backend_choice(self) -> str:
        return self.backend_name or os.environ.get("DOGBREED_BACKEND") or "local"

    def backend(self, name: str | None = None):
        from dogbreed.backends import get_backend

        name = name or self.backend_choice
        if name not in self._backends:
            self._backends[name] = get_backend(name, self.workspace)
        return self._backends[name]


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dogbreed")
@click.option("--workspace", envvar="DOGBREED_WORKSPACE", default=None, metavar="DIR",
              help="Where state and local jobs live. [default: ./.dogbreed]")
@click.option("--backend", type=click.Choice(["local", "sagemaker"]), default=None,
              help="Where jobs and endpoints run. [default: local, or $DOGBREED_BACKEND]")
@click.pass_context
def cli(ctx, workspace, backend):
    """Fine-tune, tune, debug, deploy and query a dog-breed classifier,
    on this machine (default) or on Amazon SageMaker."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    ctx.obj = App(workspace, backend)


def main() -> None:
    cli(prog_name="dogbreed")


if __name__ == "__main__":
    main()
