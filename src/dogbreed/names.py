"""One rule for every name dogbreed turns into a folder or an AWS resource.

SageMaker's rule for job, tuning-job, model, endpoint-config and endpoint names: letters,
digits and single or repeated dashes, starting and ending with a letter or digit, at most 63
characters (tuning jobs: 32). Checking it locally too means a name never escapes the workspace
(no `/`, no `..`) and a name that works locally also works on SageMaker.
"""

from __future__ import annotations

import re

from dogbreed.errors import ConfigError

MAX_LENGTH = 63
TUNING_JOB_MAX_LENGTH = 32
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def check_name(name: str, what: str = "name", max_length: int = MAX_LENGTH) -> str:
    """`name` unchanged if it follows the rule, else a ConfigError naming `what` and the rule."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > max_length:
        raise ConfigError(f"{what} {name!r} is not a valid name: use 1-{max_length} letters, digits and dashes, "
                          "starting and ending with a letter or digit")
    return name
