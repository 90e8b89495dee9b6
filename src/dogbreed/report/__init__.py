"""`dogbreed report`: one self-contained HTML file (plus the PNGs it embeds) for a training job
(loss curves from the debugger tensors, rule results, system usage, step times, test
metrics, confusion matrix) or a tuning job (trials table and plots).

    data.py    what a job folder holds, read into plain Python (smdebug for the tensors)
    charts.py  matplotlib (Agg) figures as PNG files
    html.py    the page: PNGs inlined as data URIs, so it opens offline from anywhere
"""
