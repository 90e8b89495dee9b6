"""A tuning job drawn by Optuna's own views (`optuna.visualization.matplotlib`), so the report
shows what `optuna-dashboard` shows: history with the best so far, parallel coordinates,
importances, slices, per-epoch intermediate values.

A local job's study is read from `<workspace>/tuning/<name>/study.db`; any other job (SageMaker)
is loaded into an in-memory study (`create_study` + `add_trial`) from its `TuningResult`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from dogbreed.backends.base import TrialResult, TuningResult

STUDY_FILE = "study.db"
MAX_CATEGORIES = 8  # integer hyperparameters with at most this many values are shown as choices


class View(NamedTuple):
    key: str  # file stem
    title: str
    path: Path | None  # None: nothing to draw
    note: str = ""  # why nothing was drawn


def study_file(result: TuningResult) -> Path | None:
    """The SQLite study of a local tuning job, when it has one."""
    if result.backend != "local" or not result.location:
        return None
    path = Path(result.location) / STUDY_FILE
    return path if path.is_file() else None


def dashboard_command(result: TuningResult) -> str | None:
    """The one command that opens the job's study in optuna-dashboard (local jobs)."""
    path = study_file(result)
    return f"optuna-dashboard sqlite:///{path}" if path else None


def load_study(result: TuningResult):
    """The job as an Optuna study: its own (local) or one built in memory from `result`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = study_file(result)
    if path is not None:
        return optuna.load_study(study_name=result.name, storage=f"sqlite:///{path}")
    study = optuna.create_study(direction=result.objective_goal, study_name=result.name)
    distributions = _distributions(result.trials)
    for t in result.trials:
        study.add_trial(_frozen(t, distributions))
    return study


def _number(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _distributions(trials: list[TrialResult]) -> dict:
    """Each hyperparameter's distribution, inferred from the values the trials used."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name in sorted({k for t in trials for k in t.hyperparameters}):
        values = [t.hyperparameters[name] for t in trials if name in t.hyperparameters]
        numbers = [_number(v) for v in values]
        if any(n is None for n in numbers) or len(set(numbers)) <= 1:
            out[name] = CategoricalDistribution(sorted(set(map(str, values))) if any(n is None for n in numbers)
                                                else sorted(set(numbers)))
        elif all(float(n).is_integer() for n in numbers) and len(set(numbers)) <= MAX_CATEGORIES:
            out[name] = CategoricalDistribution(sorted({int(n) for n in numbers}))
        elif all(float(n).is_integer() for n in numbers):
            out[name] = IntDistribution(int(min(numbers)), int(max(numbers)))
        else:
            lo, hi = min(numbers), max(numbers)
            out[name] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 10)
    return out


def _frozen(t: TrialResult, distributions: dict):
    import optuna
    from optuna.distributions import CategoricalDistribution

    State = optuna.trial.TrialState
    value = t.objective if t.objective is not None and not math.isnan(t.objective) else None
    state = (State.COMPLETE if t.status == "Completed" and value is not None
             else State.PRUNED if t.status == "Stopped" else State.FAIL)
    params = {}
    for name, dist in distributions.items():
        if name in t.hyperparameters:
            raw = t.hyperparameters[name]
            if isinstance(dist, CategoricalDistribution):
                params[name] = next(c for c in dist.choices if str(c) == str(raw) or _number(raw) == c)
            else:
                params[name] = type(dist.low)(_number(raw))
    return optuna.trial.create_trial(state=state, value=value if state == State.COMPLETE else None, params=params,
                                     distributions={n: distributions[n] for n in params},
                                     user_attrs={"job": t.name})


def _save(axes, path: Path, width: float) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    fig = np.ravel(axes)[0].figure
    if fig.get_size_inches()[0] < width:
        fig.set_size_inches(width, 4.2)
    # not tight_layout: it lays the slice plot's shared colorbar over the last panel
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def draw(study, out_dir: Path, history_name: str = "history.png") -> list[View]:
    """Optuna's views of `study` as PNG files in `out_dir` (the history as `history_name`)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as vis

    S = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(S.COMPLETE,))
    params = sorted({p for t in complete for p in t.params
                     if len({repr(u.params.get(p)) for u in complete}) > 1})
    has_epochs = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    views = [
        ("history", "Objective per trial, and the best so far", history_name, bool(complete),
         lambda: vis.plot_optimization_history(study), 9),
        ("parallel_coordinate", "Parallel coordinates (each line a trial)", "parallel_coordinate.png",
         len(complete) >= 2 and params, lambda: vis.plot_parallel_coordinate(study, params=params), 10),
        ("importances", "Hyperparameter importances (PED-ANOVA)", "importances.png",
         len(complete) >= 3 and params, lambda: vis.plot_param_importances(
             study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=params), 8),
        ("slice", "Objective against each hyperparameter", "slice.png", bool(complete) and params,
         lambda: vis.plot_slice(study, params=params), max(6.0, 3.4 * len(params))),
        ("intermediate", "Objective per epoch (intermediate values)", "intermediate.png", has_epochs,
         lambda: vis.plot_intermediate_values(study), 9),
    ]
    why = {"history": "no trial has an objective value yet",
           "parallel_coordinate": "needs two completed trials and a hyperparameter that varies",
           "importances": "needs three completed trials and a hyperparameter that varies",
           "slice": "no completed trial with a hyperparameter that varies",
           "intermediate": "no trial reported per-epoch values (they are recorded with --early-stopping "
                           "or --strategy hyperband)"}
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
        for key, title, file_name, possible, plot, width in views:
            if not possible:
                out.append(View(key, title, None, why[key]))
                continue
            try:
                out.append(View(key, title, _save(plot(), out_dir / file_name, width)))
            except Exception as exc:  # one view Optuna cannot draw must not cost the others
                out.append(View(key, title, None, f"Optuna could not draw it: {exc}"))
    return out
