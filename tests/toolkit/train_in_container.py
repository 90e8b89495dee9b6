"""Run inside the toolkit venv: sagemaker-training's own `trainer.train()` (what the training
container's `train` command runs), with SAGEMAKER_BASE_DIR pointing at a relocated /opt/ml.

One thing of the container is stood in for: its /etc/hosts, which makes the hosts of
resourceconfig.json (`algo-1`) resolve. The toolkit waits (up to 15 minutes) until they do.
"""

import json
import os
import socket

_resolve = socket.gethostbyname


def main():
    config = os.path.join(os.environ["SAGEMAKER_BASE_DIR"], "input", "config", "resourceconfig.json")
    hosts = set(json.load(open(config))["hosts"])
    socket.gethostbyname = lambda name: "127.0.0.1" if name in hosts else _resolve(name)
    from sagemaker_training import trainer

    trainer.train()  # exits with the entry point's status


if __name__ == "__main__":
    main()
