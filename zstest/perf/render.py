"""A perf comparison as a developer pastes it: the table, summary.txt, perf.json, junit.xml,
and a PNG per metric of every run's value on A and on B.

The table is the layout of zsmalloc/zram cover letters: metric, A mean ± sd, B mean ± sd,
change, its 95% confidence interval, Welch's p and the verdict; its header says whether the
timings come from KVM or from TCG (then comparable only side by side on the same host).
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional

from ..manifests import save_perf
from .verdict import ORDER, MetricVerdict, PerfComparison

PERF_TXT = "perf.txt"
SUMMARY_TXT = "summary.txt"
JUNIT_XML = "junit.xml"
PLOTS_DIR = "plots"


def _num(x: Optional[float]) -> str:
    """A value as a cover letter prints it: whole numbers whole, small ones to 3 digits."""
    if x is None:
        return "-"
    if abs(x) >= 100 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.3g}" if abs(x) >= 1 else f"{x:.3f}"


def _mean_sd(values: List[float], sd: Optional[float], exact: bool = False) -> str:
    """"812 ± 20.1"; an exact metric whose runs were all equal: "104857600 (all 5 =)"."""
    if not values:
        return "-"
    mean = _num(sum(values) / len(values))
    if exact and len(values) > 1 and min(values) == max(values):
        return f"{mean} (all {len(values)} =)"
    return mean + (f" ± {_num(sd)}" if sd is not None else "")


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:+.1f}%"


def _ci(m: MetricVerdict) -> str:
    ci = m.stats.ci_pct if m.stats else None
    return "-" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def _p(m: MetricVerdict) -> str:
    if m.exact:
        return "exact"
    p = m.stats.p if m.stats else None
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def accel_line(cmp: PerfComparison) -> str:
    if cmp.accel == "kvm":
        return "KVM: timings from hardware virtualization"
    if cmp.accel == "tcg":
        return "TCG: timings comparable only side by side on this host"
    return f"{cmp.accel}: the runs used different accelerators; timings are not comparable"


def summary_line(cmp: PerfComparison) -> str:
    counts = cmp.counts()
    parts = [f"{counts[k]} {k}" for k in ORDER if counts[k]]
    n_a, n_b = len(cmp.a.runs), len(cmp.b.runs)
    return (", ".join(parts) or "no metrics") + f" (A: {n_a} run{'s' * (n_a != 1)}, " \
        f"B: {n_b} run{'s' * (n_b != 1)})"


def _rows(cmp: PerfComparison) -> List[List[str]]:
    rows = [["metric", "A mean ± sd", "B mean ± sd", "change", "95% CI", "p", "verdict"]]
    for m in cmp.metrics:
        s = m.stats
        rows.append([f"{m.name} ({m.unit}, {m.better} is better)",
                     _mean_sd(m.values_a, s.sd_a if s else None, m.exact),
                     _mean_sd(m.values_b, s.sd_b if s else None, m.exact),
                     _pct(s.change_pct if s else None), _ci(m), _p(m), m.verdict])
    return rows


def render_table(cmp: PerfComparison) -> str:
    """The cover-letter table, with the header that says how far the timings can be trusted."""
    th = cmp.thresholds
    setup = cmp.setup
    lines = [f"zstest compare --perf: {summary_line(cmp)}",
             f"A: {cmp.a.path}", f"B: {cmp.b.path}",
             f"{accel_line(cmp)}; {cmp.arch}" + (
                 f", {setup['guest']}" if setup.get("guest") else "") + (
                 f", QEMU on host CPUs {setup['host_cpus']}" if setup.get("host_cpus") else ""),
             f"verdict: Welch's p < {th.p:g} and a change of {th.min_change_pct:g}% or more "
             f"(exact memory metrics: {th.exact_change_pct:g}% or more, no test; fewer than "
             f"{th.min_runs} runs a side: no p)", ""]
    rows = _rows(cmp)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3, 4, 5}
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    notes = [f"  {m.name}: {n}" for m in cmp.metrics for n in m.notes]
    if notes:
        lines += ["", "notes:"] + notes
    if cmp.failed_runs:
        lines += ["", "runs that did not pass (their metrics are counted when recorded):"]
        lines += [f"  {f}" for f in cmp.failed_runs]
    return "\n".join(lines) + "\n"


def summary_text(cmp: PerfComparison, plots: Dict[str, Path]) -> str:
    """summary.txt: the table, then which metric regressed and where each plot is."""
    lines = [render_table(cmp).rstrip("\n"), ""]
    for m in cmp.regressed:
        lines.append(f"REGRESSED {m.name}: {_pct(m.stats.change_pct)} "
                     f"({_num(m.stats.mean_a)} -> {_num(m.stats.mean_b)} {m.unit})")
    if plots:
        lines.append("plots:")
        lines += [f"  {name}: {path}" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


def _metric_json(m: MetricVerdict, plot: Optional[Path]) -> dict:
    s = m.stats
    stats = {} if s is None else {
        "n_a": s.n_a, "n_b": s.n_b, "mean_a": s.mean_a, "mean_b": s.mean_b, "sd_a": s.sd_a,
        "sd_b": s.sd_b, "change_pct": s.change_pct,
        "ci_pct": list(s.ci_pct) if s.ci_pct else None, "p": s.p,
        "identical_a": s.identical_a, "identical_b": s.identical_b}
    return {"name": m.name, "unit": m.unit, "better": m.better, "exact": m.exact, "test": m.test,
            "verdict": m.verdict, "values_a": m.values_a, "values_b": m.values_b, **stats,
            "notes": m.notes, "plot": str(plot) if plot else None}


def perf_json(cmp: PerfComparison, plots: Dict[str, Path]) -> dict:
    th = cmp.thresholds

    def side(s):
        return {"path": str(s.path),
                "runs": [{"results_dir": str(r.results_dir), "status": r.status} for r in s.runs]}
    return {"summary": summary_line(cmp), "exit_code": cmp.exit_code, "accel": cmp.accel,
            "arch": cmp.arch, "counts": cmp.counts(),
            "thresholds": {"p": th.p, "min_change_pct": th.min_change_pct,
                           "exact_change_pct": th.exact_change_pct, "min_runs": th.min_runs},
            "setup": cmp.setup, "a": side(cmp.a), "b": side(cmp.b),
            "failed_runs": cmp.failed_runs,
            "metrics": [_metric_json(m, plots.get(m.name)) for m in cmp.metrics]}


def junit_xml(cmp: PerfComparison) -> str:
    """One test case per metric (a failure when it regressed), its figures as properties."""
    from junitparser import Failure, Skipped, TestCase, TestSuite

    from ..junit import xml_text
    suite = TestSuite("zstest.perf")
    suite.hostname = xml_text(socket.gethostname())
    suite.add_property("accel", cmp.accel)
    suite.add_property("arch", cmp.arch)
    for m in cmp.metrics:
        s = m.stats
        for key, value in (("verdict", m.verdict), ("unit", m.unit), ("better", m.better),
                           ("mean_a", s and s.mean_a), ("mean_b", s and s.mean_b),
                           ("change_pct", s and s.change_pct), ("p", s and s.p)):
            if value is not None:
                suite.add_property(f"{m.name}.{key}", xml_text(value))
        case = TestCase(xml_text(m.name), "zstest.perf", 0.0)
        if m.worse:
            case.result = [Failure(xml_text(f"{m.name} regressed {_pct(s.change_pct)}"))]
        elif m.verdict.startswith("not measured") or m.verdict == "too few runs":
            case.result = [Skipped(xml_text(m.verdict))]
        suite.add_testcase(case)
    suite.update_statistics()
    root = suite._elem
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def plot_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric) + ".png"


def write_plots(cmp: PerfComparison, out: Path) -> Dict[str, Path]:
    """plots/<metric>.png: each run's value on A and B in run order, with each side's mean."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out) / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for m in cmp.metrics:
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for tag, values, colour in (("A", m.values_a, "tab:blue"), ("B", m.values_b, "tab:orange")):
            if not values:
                continue
            runs = list(range(1, len(values) + 1))
            ax.plot(runs, values, "o-", color=colour, label=f"{tag} ({len(values)} runs)")
            ax.axhline(sum(values) / len(values), color=colour, linestyle="--", linewidth=0.8)
        change = f" ({_pct(m.stats.change_pct)}, p {_p(m)})" if m.stats else ""
        ax.set_title(f"{m.name}: {m.verdict}{change}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("run")
        ax.set_ylabel(f"{m.unit} ({m.better} is better)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / plot_name(m.name)
        fig.savefig(path)
        plt.close(fig)
        plots[m.name] = path
    return plots


def write_outputs(cmp: PerfComparison, out: Path) -> Dict[str, Path]:
    """perf.txt, summary.txt, perf.json, junit.xml and plots/ into out; the plots by metric."""
    from ..fsutil import write_text_atomic
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(cmp, out)
    write_text_atomic(out / PERF_TXT, render_table(cmp))
    write_text_atomic(out / SUMMARY_TXT, summary_text(cmp, plots))
    write_text_atomic(out / JUNIT_XML, junit_xml(cmp))
    save_perf(out, perf_json(cmp, plots))
    return plots
