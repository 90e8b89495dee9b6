"""One hyperparameter-tuning trial: train on train/, report validation metrics per epoch.

SageMaker runs it as a tuning job's training script; the local backend runs it the same
way in a job folder. The tuner's objective is `valid_loss` (never the test split). With a
frozen backbone (--freeze head) only the head trains, on cached backbone features.

    python scripts/hpo.py --data-dir data/sample --arch resnet18 --weights none --epochs 2
"""

from dogbreed.training.args import add_hpo_args, get_args_parser
from dogbreed.training.run import script_main


def parse_args(argv=None):
    return add_hpo_args(get_args_parser(description=__doc__.splitlines()[0])).parse_args(argv)


def choose_training(args):
    from dogbreed.training.head_only import cached_features_apply, run_head_training

    return run_head_training if cached_features_apply(args) else None


if __name__ == "__main__":
    script_main(parse_args, evaluate_test=False, choose_training=choose_training)
