"""Report: a results directory as plain text for a reply on the mailing list.

72-column lines, no ANSI, no wide tables: series, base, config, per-patch
apply/build, tests, the first splat decoded to file:line and the patch it
points at, accel and timings, and how to reproduce. Reads results.json and the
build.json of the build it ran (kernel.build_dir); works without either
series or a booted guest.
"""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

from .decode import Decoded, Decoder, format_decoded, results_splats
from .errors import BadInput
from .manifests import (BuildConfig, BuildKernel, BuildManifest, ResultsManifest, has_build,
                        has_results, load_build, load_results)

WIDTH = 72
MAX_FAILED_SHOWN = 12


def _wrap(text: str, indent: str = "", first: Optional[str] = None) -> List[str]:
    """text wrapped to WIDTH; long words (paths) are broken rather than overflowing."""
    return textwrap.wrap(text, width=WIDTH, initial_indent=first if first is not None else indent,
                         subsequent_indent=indent, break_long_words=True,
                         break_on_hyphens=False) or [(first or indent).rstrip()]


def _field(label: str, value: str) -> List[str]:
    return _wrap(value, indent=" " * 10, first=f"{label + ':':<10}")


def _first_line(message: str) -> str:
    for line in (message or "").splitlines():
        line = line.strip()
        if line and not line.startswith(("def ", "guest =", "record =")):
            return line
    return ""


def _load_build(build_dir: Optional[str]) -> Optional[BuildManifest]:
    """The build the run booted, when its build.json is still there and readable."""
    if not build_dir or not has_build(build_dir):
        return None
    try:
        return load_build(build_dir)
    except BadInput:
        return None


def _series_lines(build: Optional[BuildManifest]) -> List[str]:
    series = build.series if build else None
    if not series:
        return _field("Series", "no series: base tree")
    total = series.total or len(series.patches)
    subject = series.cover_subject or build.data["series"].get("subject") or ""
    rev = series.revision
    head = f"{subject} " if subject else ""
    head += f"v{rev}, " if rev not in (None, "") else ""
    head += f"{total} patches" + (f" ({series.applied_prefix} applied)"
                                  if series.applied_prefix not in (None, total) else "")
    return _field("Series", head) + _field("Source", str(series.source or "?"))


def _base_lines(build: Optional[BuildManifest], results: ResultsManifest) -> List[str]:
    kernel = build.kernel if build else BuildKernel()
    tree = Path(kernel.tree).name if kernel.tree else "?"
    version = kernel.version or results.kernel.version or "?"
    base = (kernel.base or "?")[:12]
    return _field("Base", f"{tree} {version}, commit {base}")


def _config_lines(build: Optional[BuildManifest]) -> List[str]:
    config = build.config if build else BuildConfig()
    parts = []
    if config.profiles:
        parts.append("profile " + ", ".join(config.profiles))
    if config.fragments:
        parts.append("fragments " + ", ".join(Path(f).name for f in config.fragments))
    missing = config.missing_options
    parts.append("missing options: " + (", ".join(str(m) for m in missing) if missing else "none"))
    return _field("Config", "; ".join(parts))


def _build_lines(build: Optional[BuildManifest], build_dir: Optional[str]) -> List[str]:
    if build is None:
        return _field("Build", f"no build.json in {build_dir or '(no build named)'}")
    status = build.status or "?"
    dur = build.duration_s
    text = status + (f" in {dur:.0f} s" if dur is not None else "")
    if build.error:
        text += f": {build.error}"
    if status != "ok" and build.bootable:
        text += " (a kernel was still produced and booted)"
    out = _field("Build", text)
    patches = build.patches
    if patches:
        out.append("")
        out.append("Patches:")
        total = build.series.total or len(patches)
        for p in patches:
            apply = {"applied": "applied", "ok": "applied", "failed": "did not apply",
                     None: "not applied"}.get(p.apply, str(p.apply))
            built = {"ok": "built", "failed": "BUILD FAILED", None: "not built alone"}.get(
                p.build, str(p.build))
            head = f"  {p.index}/{total} {apply}, {built}"
            out += _wrap(p.subject, indent="      ", first=head + ": ")
            for warning in p.new_warnings:
                out += _wrap(str(warning), indent="        ", first="      new warning: ")
            if p.build == "failed":
                for err in p.errors[:3]:
                    out += _wrap(str(err), indent="        ", first="      error: ")
            if p.apply == "failed" and p.apply_message:
                out += _wrap(_first_line(p.apply_message), indent="        ", first="      ")
    return out


def _test_lines(results: ResultsManifest) -> List[str]:
    tests = results.tests
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for t in tests:
        counts[t.get("status", "error")] = counts.get(t.get("status", "error"), 0) + 1
    suite = results.suite or "?"
    dur = results.duration_s
    head = (f"{suite} suite: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped" + (f", {counts['error']} errors" if counts["error"] else "")
            + (f" ({dur:.1f} s)" if dur is not None else ""))
    out = _field("Tests", head if tests else f"{suite} suite: no test ran")
    bad = [t for t in tests if t.get("status") in ("failed", "error", "interrupted")]
    for t in bad[:MAX_FAILED_SHOWN]:
        out += _wrap(str(t.get("name", "?")), indent="      ", first=f"  {t.get('status', '?').upper()} ")
        why = _first_line(t.get("message", ""))
        if why:
            out += _wrap(why, indent="      ", first="      ")
    if len(bad) > MAX_FAILED_SHOWN:
        out.append(f"  ... and {len(bad) - MAX_FAILED_SHOWN} more")
    return out


def _splat_lines(results: Dict[str, Any], build_dir: Optional[str],
                 results_dir: Optional[Path] = None) -> List[str]:
    found = results_splats(results, results_dir)
    if not found:
        return ["Splats:   none in the console log"]
    test, splat = found[0]
    if isinstance(splat.get("decoded"), dict):
        decoded = Decoded.from_dict(splat["decoded"])
    else:
        decoded = Decoder(Path(build_dir) if build_dir else None).decode(splat)
    more = f" (the first of {len(found)})" if len(found) > 1 else ""
    out = _field("Splats", f"{len(found)}{more}" + (f", during {test}" if test else ""))
    out.append("")
    out += _wrap(f"[{decoded.kind}] {decoded.title}", indent="    ", first="  ")
    out += format_decoded(decoded, width=WIDTH, max_frames=12)
    if decoded.patches:
        first = decoded.patches[0]
        out.append("")
        out += _wrap(f"It points at patch {first.index}: \"{first.subject}\"", indent="  ", first="  ")
    elif decoded.frames and not any(f.source for f in decoded.frames[1:]) and \
            not decoded.frames[0].source:
        out += _wrap(f"(not decoded: {'; '.join(decoded.notes) or 'no build'})", indent="   ",
                     first="  ")
    return out


def _console_tail(path: Path, count: int = 8) -> List[str]:
    """The last kernel lines of a run that ran no test: where the boot stopped."""
    try:
        text = path.read_text(errors="replace").replace("\r", "")
    except OSError:
        return []
    tail = [line for line in text.splitlines() if line.strip()][-count:]
    if not tail:
        return []
    out = ["", f"Console tail ({path.name}):"]
    for line in tail:
        out.append("  " + (line if len(line) <= WIDTH - 2 else line[:WIDTH - 5] + "..."))
    return out


def _run_lines(results: ResultsManifest, build: Optional[BuildManifest]) -> List[str]:
    accel = results.accel
    parts = []
    if accel.name:
        reason = accel.reason
        reason = reason if len(reason) <= 80 else reason[:77] + "..."
        parts.append(f"{accel.name}" + (f" ({reason})" if reason else ""))
    out = _field("Kernel", results.kernel.uname or results.kernel.version or "?")
    if parts:
        out += _field("Accel", parts[0])
    timing = []
    if build is not None and build.duration_s is not None:
        timing.append(f"build {build.duration_s:.0f} s")
    if results.boot_to_ssh_s is not None:
        timing.append(f"boot to SSH {results.boot_to_ssh_s:.2f} s")
    if results.duration_s is not None:
        timing.append(f"boot-and-run {results.duration_s:.1f} s")
    if timing:
        out += _field("Timings", ", ".join(timing))
    return out


def _reproduce_lines(results: ResultsManifest, build: Optional[BuildManifest],
                     build_dir: Optional[str]) -> List[str]:
    out = ["How to reproduce:"]
    commands = []
    if build and build.reproducer:
        commands.append(build.reproducer)
    command = results.data.get("command")
    if command:
        commands.append(shlex.join(str(c) for c in command) if isinstance(command, list) else str(command))
    else:
        argv = ["zstest", "boot-and-run"]
        if build_dir:
            argv += ["--build", build_dir]
        if results.suite:
            argv += ["--suite", results.suite]
        commands.append(shlex.join(argv))
    for cmd in commands:
        # a shell line continued with backslashes, each piece within the width
        out += _shell_lines(cmd)
    return out


def _shell_lines(cmd: str) -> List[str]:
    """cmd as shell lines continued with backslashes, none wider than WIDTH."""
    lines, current = [], "  "
    for word in shlex.split(cmd):
        piece = shlex.quote(word)
        if current.strip() and len(current) + len(piece) + 2 > WIDTH:
            lines.append(current.rstrip() + " \\")
            current = "      "
        while len(current) + len(piece) > WIDTH - 1:
            # a word longer than a line (a deep path): backslash-newline joins it again
            cut = WIDTH - 1 - len(current)
            lines.append(current + piece[:cut] + "\\")
            piece, current = piece[cut:], ""
        current += piece + " "
    lines.append(current.rstrip())
    return lines


def _fit(line: str) -> List[str]:
    """A line wider than WIDTH (a long path in a frame) wrapped under its own indent."""
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    return _wrap(line.strip(), indent=indent[:20], first=line[:len(line) - len(line.lstrip())])


def render_report(results_dir: Path) -> str:
    """The plain-text report of one results directory (72-column lines)."""
    results_dir = Path(results_dir)
    if not has_results(results_dir):
        raise BadInput(f"{results_dir} holds no readable results.json: give a results directory.")
    results = load_results(results_dir)
    try:
        return _render(results_dir, results)
    except (AttributeError, TypeError, KeyError) as exc:
        raise BadInput(f"{results.path} is not in the shape zstest writes "
                       f"({exc.__class__.__name__}: {exc}).") from None


def _render(results_dir: Path, results: ResultsManifest) -> str:
    build_dir = results.kernel.build_dir
    build = _load_build(build_dir)
    status = (results.status or "?").upper()
    lines = _wrap(f"zstest results: {status}", first="")
    lines.append("")
    lines += _series_lines(build)
    lines += _base_lines(build, results)
    lines += _config_lines(build)
    lines += _build_lines(build, build_dir)
    lines.append("")
    lines += _test_lines(results)
    if results.status in ("error", "interrupted") and results.message:
        lines += _wrap(_first_line(results.message), indent="          ", first=f"{'Run:':<10}")
    if not results.tests:
        lines += _console_tail(results_dir / results.console_log)
    lines.append("")
    lines += _splat_lines(results.data, build_dir, results_dir)
    lines.append("")
    lines += _run_lines(results, build)
    lines.append("")
    lines += _reproduce_lines(results, build, build_dir)
    text = "\n".join(fitted.rstrip() for line in lines for fitted in _fit(line))
    # the kernel's and tests' text may hold anything: keep the mail plain
    text = "".join(ch for ch in text if ch == "\n" or (ch.isprintable() and ch != "\x1b"))
    return text + "\n"
