"""`dogbreed config show`: the resolved settings and where each value came from."""

from __future__ import annotations

import json

import click


@click.group()
def config():
    """Settings: flags > environment > dogbreed.toml > defaults."""


@config.command()
@click.option("--json", "as_json", is_flag=True, help="Print {key: {value, source}} as JSON.")
@click.pass_obj
def show(app, as_json):
    """Print every setting, its value and its source (flag, env variable, config file or default).

    \b
    Example:
      dogbreed --region eu-west-1 config show
    """
    s = app.settings
    if as_json:
        click.echo(json.dumps({"config_file": str(s.config_path) if s.config_path else None,
                               "settings": {x.key: {"value": x.value, "source": x.source} for x in s.items()}},
                              indent=2))
        return
    if s.config_path:
        click.echo(f"config file: {s.config_path} ({s.config_why})")
    else:
        click.echo("config file: none (looked at --config, $DOGBREED_CONFIG, ./dogbreed.toml)")
    width = max(len(x.key) for x in s.items())
    shown = {x.key: s.display(x.key) for x in s.items()}
    vwidth = max(len(v) for v in shown.values())
    for x in s.items():
        click.echo(f"  {x.key:<{width}}  {shown[x.key]:<{vwidth}}  {x.source}")
