"""The CLI loads instantly: `--help` on every (sub)command works and imports nothing heavy."""

import json
import subprocess
import sys

import click
import pytest

from dogbreed.cli import COMMANDS, cli

HEAVY = ["torch", "torchvision", "sagemaker", "boto3", "botocore", "smdebug", "optuna", "matplotlib", "numpy"]


def all_command_paths():
    ctx = click.Context(cli)
    paths = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(cmd, click.Group):
            paths += [[name, sub] for sub in cmd.list_commands(ctx)]
    return paths


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda p: " ".join(p))
def test_help_on_every_command(cli, path):
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_help_imports_no_heavy_module():
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from dogbreed.cli import cli\n"
        "paths = [[]] + [[n] for n in cli.list_commands(None)]\n"
        "for p in paths:\n"
        "    r = CliRunner().invoke(cli, p + ['--help'])\n"
        "    assert r.exit_code == 0, (p, r.output)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_real_executable_help_and_version(dogbreed_cmd):
    proc = dogbreed_cmd("--help")
    assert proc.returncode == 0 and "Commands:" in proc.stdout
    assert set(COMMANDS) <= set(proc.stdout.split())
    assert dogbreed_cmd("--version").stdout.startswith("dogbreed, version ")


def test_usage_error_exits_2(dogbreed_cmd):
    proc = dogbreed_cmd("data", "synth", "--classes", "1")
    assert proc.returncode == 2
    assert "--classes" in proc.stderr


def test_domain_error_is_one_line_exit_1(dogbreed_cmd, tmp_path):
    proc = dogbreed_cmd("--workspace", tmp_path / "ws", "data", "check", tmp_path / "nope")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("Error: dataset folder")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
