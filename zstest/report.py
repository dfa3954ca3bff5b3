"""Report: a results directory as plain text for a reply on the mailing list.

72-column lines, no ANSI, no wide tables: series, base, config, per-patch
apply/build, tests, the first splat decoded to file:line and the patch it
points at, accel and timings, and how to reproduce. Reads results.json and the
build.json of the build it ran (kernel.build_dir); works without either
series or a booted guest.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .decode import Decoder, format_decoded, recorded_or_decode, results_splats
from .errors import BadInput
from .fsutil import artifact_file, read_tail
from .splats import classify, split_timestamp
from .textsafe import printable
from .manifests import (BuildConfig, BuildKernel, BuildManifest, ResultsManifest, has_build,
                        has_results, load_build, load_results)

WIDTH = 72
CONSOLE_LOG = "console.log"
CONSOLE_TAIL_BYTES = 64 * 1024     # eight lines' worth and then some; never the whole log
MAX_FAILED_SHOWN = 12
# What a reader pastes or greps: a path, file:line, function+0xoff/0xsize, a URL. A line holding
# one stays whole past WIDTH; cutting ".../mm/zsmalloc.c:18" / "68" makes it useless.
UNBREAKABLE = re.compile(r"(?:~|\.{1,2})?/[\w.+-]+/|[\w.+-]+/[\w.+-]*[A-Za-z][\w.+-]*"
                         r"|\b[\w-]+\.[chS]:\d+|\b\w+\+0x[0-9a-f]+/0x[0-9a-f]+|https?://")
# A kernel location (file:line, function+offset): its whole line is what gets pasted.
LOCATION = re.compile(r"\b[\w-]+\.[chS]:\d+|\b\w+\+0x[0-9a-f]+/0x[0-9a-f]+")




class _Whole(str):
    """A line _fit leaves whole (laid out already, or a shell line: a cut breaks the command)."""


def _wrap(text: str, indent: str = "", first: Optional[str] = None) -> List[str]:
    """text wrapped to WIDTH between words (a path is never cut); a text holding a kernel
    location (file:line, function+offset) is one line, however long."""
    first = first if first is not None else indent
    if LOCATION.search(text) or " " not in text.strip():
        return [_Whole(first + text)]
    # laid out here for good: _fit must not wrap these lines again
    return [_Whole(line) for line in textwrap.wrap(
        text, width=WIDTH, initial_indent=first, subsequent_indent=indent,
        break_long_words=False, break_on_hyphens=False)] or [first.rstrip()]


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
    out = _field("Series", head) + _field("Source", str(series.source or "?"))
    msgid = _series_msgid(build)
    if msgid:
        from .series.lore import lore_link
        out += _field("Thread", lore_link(msgid))
    return out


def _series_msgid(build: BuildManifest) -> Optional[str]:
    """The series' message-id: recorded at build time, or named by its source (msgid, lore URL)."""
    from .series.lore import msgid_from_url
    from .series.sources import MSGID
    recorded = build.data["series"].get("msgid")
    if isinstance(recorded, str) and recorded:
        return recorded
    source = str(build.series.source or "")
    if source.startswith(("http://", "https://")):
        return msgid_from_url(source)
    return source.strip("<>") if MSGID.match(source) and not Path(source).exists() else None


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


def _compiler_lines(build: Optional[BuildManifest]) -> List[str]:
    """The compiler that built the kernel (its .config's version text) and the toolchain."""
    t = build.toolchain if build else None
    if t is None or not (t.version or t.cc):
        return []
    return _field("Compiler", (f"{t.name}: " if t.name else "") + (t.version or t.cc))


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
    decoded = recorded_or_decode(splat, lambda: Decoder(Path(build_dir) if build_dir else None))
    more = f" (the first of {len(found)})" if len(found) > 1 else ""
    out = _field("Splats", f"{len(found)}{more}" + (f", during {test}" if test else ""))
    out.append("")
    out.append(f"  [{decoded.kind}] {decoded.title}")     # a splat title is never wrapped
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


def _console_tail(results_dir: Path, name: str, count: int = 8) -> List[str]:
    """The last kernel lines of a run that ran no test: where the boot stopped.

    results.json names the log: only a regular file inside the results dir is read, its tail.
    """
    path = artifact_file(results_dir, name)
    if path is None:
        if name == CONSOLE_LOG and not (Path(results_dir) / name).exists():
            return []
        return ["", f"Console tail: not shown: console_log {str(name)[:80]!r} is not a file "
                    f"inside {results_dir}."]
    try:
        text = read_tail(path, CONSOLE_TAIL_BYTES).replace("\r", "")
    except OSError:
        return []
    tail = [line for line in text.splitlines() if line.strip()][-count:]
    if not tail:
        return []
    out = ["", f"Console tail ({path.name}):"]
    for line in tail:
        whole = (len(line) <= WIDTH - 2 or UNBREAKABLE.search(line)
                 or classify(split_timestamp(line)[1]) is not None)
        out.append(_Whole("  " + line) if whole else "  " + line[:WIDTH - 5] + "...")
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


# Options that name this machine's files (results, build dirs, copies) or hold it in the
# foreground: not for another machine.
_LOCAL_OPTIONS = {"--out", "--build-out", "--json", "--junit", "--cell", "--build", "--vmcore",
                  "--keep-vm-on-failure", "--quiet", "-q"}
_RUN_SELECTION = {"--suite", "-k", "--repeat"}
# boot-and-run options that shape the run itself: the reproducer carries them
_RUN_SHAPE = {"--repeat", "--timeout", "--run-timeout", "--memory", "--boot-timeout", "--append",
              "--accel", "--stop-on-oops"}
# options of build/run/boot-and-run that never take a value
_FLAGS = {"--stop-on-oops", "--keep-vm-on-failure", "--quiet", "-q", "--each",
          "--allow-config-drift", "--no-series-config", "--require-built", "--coverage"}


def _option_groups(words: List[str]) -> List[List[str]]:
    """A command's words grouped per option: [option] or [option, value]. zstest's build, run
    and boot-and-run take no positional argument, so a word after an option that takes a value
    and is not itself an option is that value."""
    groups, i = [], 0
    while i < len(words):
        word, value = words[i], words[i + 1] if i + 1 < len(words) else None
        takes_value = ("=" not in word and word not in _FLAGS and value is not None
                       and not value.startswith("-"))
        groups.append(words[i:i + 2] if takes_value else [word])
        i += 2 if takes_value else 1
    return groups


def _portable_build_args(build: BuildManifest, drop: frozenset = frozenset()) -> List[str]:
    """build.json's reproducer arguments without this machine's paths (nor the options in
    drop): the series source as given (its lore link when it was a file in the cache),
    Debian's tree by its version."""
    from .cache import cache_root
    try:
        words = shlex.split(build.reproducer or "")[2:]
    except ValueError:
        return []
    cache = str(cache_root())
    out = []
    for group in _option_groups(words):
        name, value = group[0].split("=", 1)[0], group[1] if len(group) > 1 else None
        if name in _LOCAL_OPTIONS | _RUN_SELECTION | drop:
            continue
        if name == "--kernel" and value and value.startswith(cache):
            debian = re.search(r"linux-source-(\d+\.\d+)$", value.rstrip("/"))
            out += ["--kernel", debian.group(1)] if debian and debian.group(1) != "6.1" else []
            continue
        if name == "--series" and value and value.startswith(cache) and _series_msgid(build):
            from .series.lore import lore_link
            out += ["--series", lore_link(_series_msgid(build))]
            continue
        out += group
    return out


def _run_options(command: List[str]) -> Tuple[List[str], Optional[str]]:
    """From the command that made the results (results.json's command): the options that
    shape the run, and its -k selection (None when it had none)."""
    words = list(command[2:]) if len(command) > 1 and command[1] in ("run", "boot-and-run") else []
    shape, keyword = [], None
    for group in _option_groups(words):
        name = group[0].split("=", 1)[0]
        value = group[1] if len(group) > 1 else (group[0].split("=", 1)[1]
                                                 if "=" in group[0] else None)
        if name == "-k" and value is not None:
            keyword = value
        elif name in _RUN_SHAPE:
            shape += group
    return shape, keyword


def _reproduce_lines(results: ResultsManifest, build: Optional[BuildManifest],
                     build_dir: Optional[str]) -> List[str]:
    """One `zstest run` line that works on another machine: the build's options, the suite and
    the run's own options from results.json's command, with its -k selection (without one:
    -k naming the tests that did not pass)."""
    out = ["How to reproduce:"]
    shape, keyword = _run_options(results.command)
    # the run's options come from its own command when results.json has it
    drop = frozenset(_RUN_SHAPE) if results.command else frozenset()
    argv = ["zstest", "run"] + (_portable_build_args(build, drop) if build else [])
    if results.suite:
        argv += ["--suite", results.suite]
    bad = [str(t.get("name", "")).rsplit("::", 1)[-1].split("[", 1)[0] for t in results.tests
           if t.get("status") in ("failed", "error", "interrupted")]
    if keyword:
        argv += ["-k", keyword]
    elif bad:
        argv += ["-k", " or ".join(dict.fromkeys(b for b in bad if b))]
    argv += shape
    # a shell line continued with backslashes, each piece within the width
    out += [_Whole(line) for line in _shell_lines(shlex.join(argv))]
    if build and build.series and str(build.series.source or "") == "-":
        out.append("  (the series comes on standard input: pipe its mbox in)")
    return out


def _tested_by_lines(results: ResultsManifest, build: Optional[BuildManifest]) -> List[str]:
    """A ready Tested-by: trailer when everything passed, else nothing."""
    if results.status != "passed" or (build is not None and build.status != "ok"):
        return []
    who = _tester()
    if who is None:
        # a note, never a line a mail tool could take for a (broken) trailer
        return ["", "(No Tested-by here: set git config user.name and user.email, or",
                " tested_by = \"Name <email>\" in ~/.config/zstest/config.toml.)"]
    return ["", f"Tested-by: {who}"]


def _tester() -> Optional[str]:
    """'Name <email>': the config file's tested_by, else the user's git identity."""
    from .gitsafe import user_config_value
    from .proc import CommandError
    from .settings import current
    setting = current().values.get("tested_by")
    if setting is not None and str(setting.value).strip():
        return str(setting.value).strip()
    ident = []
    for key in ("user.name", "user.email"):
        try:
            ident.append(user_config_value(key))
        except (CommandError, OSError):
            return None
    name, email = ident
    return f"{name} <{email}>" if name and email else None


def _shell_lines(cmd: str) -> List[str]:
    """cmd as shell lines continued with backslashes, none wider than WIDTH."""
    lines, current = [], "  "
    for word in shlex.split(cmd):
        piece = shlex.quote(word)
        if current.strip() and len(current) + len(piece) + 2 > WIDTH:
            lines.append(current.rstrip() + " \\")
            current = "      "
        current += piece + " "      # a word longer than a line (a URL, a path) stays whole
    lines.append(current.rstrip())
    return lines


def _fit(line: str) -> List[str]:
    """A line wider than WIDTH wrapped between words under its own indent, unless it holds a
    kernel location or is a shell line."""
    if len(line) <= WIDTH or isinstance(line, _Whole) or LOCATION.search(line):
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


def _coverage_lines(data: dict) -> list:
    """--coverage runs: per patch, the changed lines the tests executed (gcov)."""
    coverage = data.get("coverage") if isinstance(data, dict) else None
    patches = coverage.get("patches") if isinstance(coverage, dict) else None
    if not isinstance(patches, list) or not patches:
        return []
    out = ["Coverage: the lines each patch adds, executed by the tests (gcov)"]
    for p in patches:
        if not isinstance(p, dict):
            continue
        if not p.get("executable"):
            out.append(f"  patch {p.get('index')}: no line gcov counts")
            continue
        out.append(f"  patch {p.get('index')}: {p.get('executed')}/{p.get('executable')} "
                   f"executed")
        for where in (p.get("not_executed") or [])[:3]:
            out.append(f"    not executed: {where}")
    return out + [""]


def _render(results_dir: Path, results: ResultsManifest) -> str:
    build_dir = results.kernel.build_dir
    build = _load_build(build_dir)
    status = (results.status or "?").upper()
    lines = _wrap(f"zstest results: {status}", first="")
    lines.append("")
    lines += _series_lines(build)
    lines += _base_lines(build, results)
    lines += _config_lines(build)
    lines += _compiler_lines(build)
    lines += _build_lines(build, build_dir)
    lines.append("")
    lines += _test_lines(results)
    if results.status in ("error", "interrupted") and results.message:
        lines += _wrap(_first_line(results.message), indent="          ", first=f"{'Run:':<10}")
    if not results.tests:
        lines += _console_tail(results_dir, results.console_log)
    lines.append("")
    lines += _splat_lines(results.data, build_dir, results_dir)
    lines.append("")
    lines += _coverage_lines(results.data)
    lines += _run_lines(results, build)
    lines += _tested_by_lines(results, build)
    lines.append("")
    lines += _reproduce_lines(results, build, build_dir)
    text = "\n".join(fitted.rstrip() for line in lines for fitted in _fit(line))
    # the kernel's and the tests' text may hold anything: keep the mail plain
    return printable(text) + "\n"
