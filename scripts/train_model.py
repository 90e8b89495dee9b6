"""Final training of the chosen configuration, then one evaluation on the test split.

Instrumentation (smdebug hook, profiler timings) attaches through
`dogbreed.training.instrumentation.make_instrumentation`; it is a no-op when not configured.

    python scripts/train_model.py --data-dir data/sample --arch resnet18 --weights none --epochs 3
"""

from dogbreed.training.args import add_debugger_args, get_args_parser
from dogbreed.training.instrumentation import make_instrumentation
from dogbreed.training.run import script_main


def parse_args(argv=None):
    return add_debugger_args(get_args_parser(description=__doc__.splitlines()[0])).parse_args(argv)


if __name__ == "__main__":
    script_main(parse_args, evaluate_test=True, instrumentation_factory=make_instrumentation)
