"""Run inside the toolkit venv: the PyTorch inference container's serving entry,
`sagemaker_pytorch_serving_container.serving.main()` (TorchServe + AWS's toolkit), on this machine.

What the container fixes, relocated here without editing the toolkit's code:
- /opt/ml/model -> $SAGEMAKER_BASE_DIR/model (the toolkit's own variable);
- /etc/sagemaker-ts.properties -> RUN_DIR/sagemaker-ts.properties (a module constant);
- the model store ($PWD/.sagemaker/ts/models), TorchServe's pid file ($TMPDIR) and logs
  ($LOG_LOCATION) -> RUN_DIR, so several stacks can run at once;
- `torchserve` on PATH: this venv's bin;
- the container's one TorchServe: the toolkit waits for "the" ModelServer process among all
  processes, here it looks only for the one started with this RUN_DIR's config.
Addresses: SAGEMAKER_BIND_TO_PORT (the toolkit's) plus TS_*_ADDRESS for loopback and TS_GRPC_*_PORT
(TorchServe also opens two gRPC ports, 7070/7071 in the container), which TorchServe
reads because the toolkit's config sets enable_envvars_config=true.

    python torchserve_launcher.py RUN_DIR   (env: SAGEMAKER_BASE_DIR, SAGEMAKER_BIND_TO_PORT, ...)
"""

import os
import sys
import types


def main(run_dir):
    os.chdir(run_dir)
    # the container has `torchserve` (and `java`) on PATH; here the command lies next to this python
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    import psutil
    from sagemaker_pytorch_serving_container import serving, torchserve

    torchserve.TS_CONFIG_FILE = os.path.join(run_dir, "sagemaker-ts.properties")
    torchserve.MODEL_STORE = os.path.join(run_dir, ".sagemaker", "ts", "models")

    def own_processes():
        for p in psutil.process_iter():
            try:
                if torchserve.TS_CONFIG_FILE in " ".join(p.cmdline()):
                    yield p
            except psutil.Error:
                continue

    torchserve.psutil = types.SimpleNamespace(process_iter=own_processes, STATUS_ZOMBIE=psutil.STATUS_ZOMBIE)
    serving.main()


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
