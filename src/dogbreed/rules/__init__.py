"""Debugger rules and the profiler summary, evaluated locally the way SageMaker's rule jobs do.

- `config`: what the hook saves and which rules run (plain data, both backends).
- `builtin`: LossNotDecreasing, Overfit, VanishingGradient, ExplodingTensor on smdebug's `Rule`.
- `runner`: runs a rule on a trial and maps the outcome to SageMaker's statuses.
- `profiler`: ProfilerReport-style findings from system metrics and step timings.

Only `config` is light; the others import smdebug/numpy when imported.
"""
