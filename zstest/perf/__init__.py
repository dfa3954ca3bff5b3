"""The performance and memory verdict between two kernels (`zstest compare --perf`).

samples.py reads the perf metrics guest tests record (results.json's tests[].metrics.perf)
from many results dirs per side; stats.py describes one metric's runs on A and B (scipy);
verdict.py turns that into regressed / improved / no significant change; render.py writes the
table, perf.json, summary.txt, junit.xml and a plot per metric; run.py boots A and B
alternately to make the runs.
"""
