"""`dogbreed report`: one self-contained HTML file (plus the PNGs it embeds) for a training job
(loss curves from the debugger tensors, rule results, system usage, step times, test
metrics, most confused breeds, per-breed accuracy) or a tuning job (trials table and Optuna's views).

    build.py         training_report / tuning_report: write the page and its charts into a folder
    data.py          what a job folder holds, read into plain Python (smdebug for the tensors)
    trials.py        a tuning job's trials as rows, best first (also the table `dogbreed tune` prints)
    charts.py        matplotlib (Agg) figures of a training job as PNG files
    classes.py       the confusion matrix at any number of breeds: most confused pairs, worst breeds
    findings.py      why each profiler check did or did not fire
    optuna_views.py  a tuning job as an Optuna study, drawn by optuna.visualization.matplotlib
    html.py          the page: PNGs inlined as data URIs, so it opens offline from anywhere
"""
