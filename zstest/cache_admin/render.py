"""`zstest cache show` and `zstest cache prune` as text."""

from __future__ import annotations

from .prune import PruneResult
from .usage import CacheReport, _iso, human


def render_report(report: CacheReport) -> str:
    lines = [f"cache: {report.root}  ({human(report.total_bytes)} in {report.total_files} files; "
             f"scanned in {report.duration_s:.1f} s)", "",
             f"  {'area':<14} {'size':>10} {'items':>7} {'files':>9}"]
    for a in report.areas:
        if not a.exists:
            lines.append(f"  {a.name:<14} {'-':>10} {'-':>7} {'-':>9}")
            continue
        label = a.name if a.known else f"{a.name} *"
        if a.symlink_to is not None:
            lines.append(f"  {label:<14} symlink to {a.symlink_to} (not followed)")
            continue
        lines.append(f"  {label:<14} {human(a.size_bytes):>10} {a.count:>7} {a.files:>9}")
    lines.append(f"  {'total':<14} {human(report.total_bytes):>10} {'':>7} {report.total_files:>9}")
    if any(a.exists and not a.known for a in report.areas):
        lines.append("  * not written by zstest itself (tests, other tools); never pruned")
    lines.append("")
    for name in ("builds", "results"):
        link = report.last[name]
        if link.target is None:
            lines.append(f"{name}/last: none")
        elif link.resolved is None:
            lines.append(f"{name}/last -> {link.target} (a symlink loop: points nowhere)")
        else:
            where = "in the cache" if link.inside_cache else "outside the cache"
            state = "" if link.exists else ", missing"
            lines.append(f"{name}/last -> {link.target} ({where}{state})")
        newest, oldest = report.newest_oldest(name)
        if newest:
            lines.append(f"  newest {newest.name} ({_iso(newest.last_used)}), "
                         f"oldest {oldest.name} ({_iso(oldest.last_used)})")
    return "\n".join(lines)


def render_prune(result: PruneResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    lines = []
    for item in result.removed:
        lines.append(f"{verb:<12}  {item.area}/{item.name}  {human(item.size_bytes)}  "
                     f"({item.reason})")
    for item in result.skipped:
        lines.append(f"{'skipped':<12}  {item.area}/{item.name}  {human(item.size_bytes)}  "
                     f"({item.reason})")
    if result.ccache:
        c = result.ccache
        if result.dry_run:
            lines.append(f"{'would run':<12}  ccache -c on ccache/ ({human(c['before_bytes'])}, "
                         f"limit {c.get('max_size')})")
        else:
            lines.append(f"{'ran':<12}  ccache -c on ccache/: {human(c['before_bytes'])} -> "
                         f"{human(c['after_bytes'])}")
    if result.kept:
        lines.append("kept: " + ", ".join(f"{n} in {a}/" for a, n in sorted(result.kept.items())))
    lines.extend(f"note: {n}" for n in result.notes)
    freed = human(result.freed_bytes)
    lines.append(f"{'would free' if result.dry_run else 'freed'} {freed} "
                 f"({len(result.removed)} entries) in {result.duration_s:.1f} s")
    return "\n".join(lines)
