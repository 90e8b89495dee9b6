"""One hyperparameter-tuning trial: train on train/, report validation metrics per epoch.

SageMaker runs it as a tuning job's training script; the local backend runs it the same
way in a job folder. The tuner's objective is `valid_loss` (never the test split).

    python scripts/hpo.py --data-dir data/sample --arch resnet18 --weights none --epochs 2
"""

from dogbreed.training.args import get_args_parser
from dogbreed.training.run import script_main


def parse_args(argv=None):
    return get_args_parser(description=__doc__.splitlines()[0]).parse_args(argv)


if __name__ == "__main__":
    script_main(parse_args, evaluate_test=False)
