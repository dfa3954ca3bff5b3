"""build.json as the build stage writes it: one method per event of a build, every key set here.

The build stage (build.py) says what happened (the worktree is ready, patch 2 applied, a make
pass ended, the artifacts are copied) and BuildRecord turns it into build.json's keys; the
shape read back is manifests.BuildManifest's. save() goes through manifests.save_build.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

from . import buildlog
from .errors import ZstestError
from .manifests import save_build
from .patchset import patch_sha256


class BuildRecord:
    def __init__(self, format_version: str):
        self.t0 = time.monotonic()
        self.durations: Dict[str, float] = {}
        self.data: dict = {"status": "running", "format": format_version}

    # -- the run's facts, known before the tree is touched

    def begin(self, *, tree: Path, series, total: Optional[int], fragments, toolchain: dict,
              target: dict, make_args: List[str], reproducer: str, build_dir: Path,
              each: bool) -> None:
        self.data.update({
            "kernel": {"tree": str(tree), "base": None, "version": None},
            "series": None if series is None else {
                "source": series.source, "revision": series.revision, "kind": series.kind,
                "cover_subject": series.cover_subject,
                "total": total, "applied_prefix": len(series.patches),
                "patches": [{"index": p.index, "subject": p.subject, "apply": None,
                             "build": None, "new_warnings": [], "msgid": p.msgid or None,
                             # KCIDB's patchset hash and b4-check's cache key (patchset.py)
                             "sha256": patch_sha256(p.raw)} for p in series.patches]},
            "config": {"profiles": [f.profile for f in fragments if f.profile],
                       "fragments": [str(f.path) for f in fragments if not f.profile],
                       "start": None, "missing_options": [], "ignored_optional": []},
            "artifacts": {}, "warnings": [], "errors": [],
            "ccache": None, "toolchain": toolchain, "arch": target,
            "make_args": list(make_args), "reproducer": reproducer,
            "build_dir": str(build_dir), "each": each,
        })

    def coverage(self, files: List[str], changed_lines) -> None:
        # the lines each patch adds, numbered after the whole series: what the run maps
        self.data["coverage"] = {"enabled": True, "files": files, "changed_lines": changed_lines}

    def worktree(self, wt, series) -> None:
        kernel = self.data["kernel"]
        kernel.update(base=wt.base_commit, worktree=str(wt.path),
                      # the cached repo keeps every applied patch's commit: decode maps lines to them
                      git_dir=str(wt.git_dir), notes=list(wt.notes))
        if series is not None:
            self.data["series"].update(base_commit=wt.series_base, base_used=wt.base_commit,
                                       base_from=wt.base_from, msgid=series.msgid)

    def objdir(self, objdir: Path) -> None:
        self.data["objdir"] = str(objdir)

    # -- configuring

    def configured(self, res, dropped: Optional[list]) -> None:
        config = self.data["config"]
        config.update(start=res.start, missing_options=[x.to_json() for x in res.missing],
                      ignored_optional=res.ignored_optional, requested=len(res.requested))
        if dropped is not None:
            self.data["series"].setdefault("config", {})["dropped"] = [x.to_json() for x in dropped]

    def compiler_version(self, text: Optional[str]) -> None:
        """The compiler that really builds it, as Kconfig found it (CONFIG_CC_VERSION_TEXT)."""
        self.data["toolchain"]["version"] = text

    def series_config(self, symbols: Optional[list], current: Dict[str, str]) -> None:
        """What the series' code needs turned on (None: --no-series-config)."""
        self.data["series"]["config"] = {"enabled": False, "symbols": []} if symbols is None else {
            "enabled": True,
            "symbols": [{"name": s.name, "why": s.why, "patch": s.patch,
                         "was": current.get(s.name, "n")} for s in symbols]}

    def series_config_now(self, final: Dict[str, str]) -> None:
        for entry in self.data["series"]["config"]["symbols"]:
            entry["now"] = final.get(entry["name"], "n")

    def build_coverage(self, coverage: list) -> None:
        self.data["series"]["build_coverage"] = [c.to_json() for c in coverage]

    # -- patches and make passes

    def patch(self, index: int) -> dict:
        """The entry of the patch numbered `index` in its series."""
        return next(e for e in self.data["series"]["patches"] if e["index"] == index)

    def applied(self, index: int, pa, each: bool) -> None:
        entry = self.patch(index)
        entry.update(apply=pa.status, commit=pa.commit)
        if each:
            entry["apply_message"] = pa.message if pa.status == "failed" else ""

    def compiled(self, stage: str, parsed: buildlog.BuildLog,
                 warnings: List[buildlog.Diagnostic]) -> None:
        self.data["warnings"] = [d.to_json() for d in warnings]
        self.data["errors"] = [d.to_json() for d in buildlog.dedupe(parsed.errors)]
        self.data.setdefault("compiled", {})[stage] = len(parsed.compiled)

    def patch_built(self, index: int, ok: bool, parsed: buildlog.BuildLog,
                    new: List[buildlog.Diagnostic], duration_s: Optional[float]) -> None:
        self.patch(index).update(
            build="ok" if ok else "failed", new_warnings=[str(d) for d in new],
            errors=[str(d) for d in buildlog.dedupe(parsed.errors)],
            compiled=len(parsed.compiled), duration_s=duration_s)

    def series_built(self, ok: bool) -> None:
        """The whole series built at once: only its last patch has a build verdict."""
        for entry in self.data["series"]["patches"]:
            entry["build"] = None
        self.data["series"]["patches"][-1]["build"] = "ok" if ok else "failed"

    def last_patch_built(self) -> bool:
        return self.data["series"]["patches"][-1]["build"] == "ok"

    def patch_errors_default(self, index: int, errors: List[str]) -> None:
        entry = self.patch(index)
        if not entry.get("errors"):
            entry["errors"] = errors

    # -- the kernel and what goes with it

    def kernel_version(self, version: Optional[str]) -> None:
        self.data["kernel"]["version"] = version

    def keep_ref(self, ref: str) -> None:
        self.data["kernel"]["keep_ref"] = ref

    def artifact(self, key: str, value) -> None:
        self.data["artifacts"][key] = value

    def gcno(self, directory: str, kept: List[str]) -> None:
        self.data["coverage"].update(gcno_dir=directory, instrumented=kept)

    def ccache(self, summary: dict) -> None:
        self.data["ccache"] = summary

    # -- the end

    def finished(self, status: str, bootable: Optional[bool] = None,
                 error: Optional[str] = None) -> None:
        """status ok / failed / interrupted; bootable None keeps one already said."""
        self.data["status"] = status
        if bootable is not None:
            self.data["bootable"] = bootable
        else:
            self.data.setdefault("bootable", False)
        if error is not None:
            self.data["error"] = error

    def bootable(self, flag: bool) -> None:
        self.data["bootable"] = flag

    def ended_before_build(self, exc: BaseException) -> None:
        """How an exception ended the run before the worktree was ready, in build.json's words."""
        if isinstance(exc, KeyboardInterrupt):
            self.finished("interrupted", False, "interrupted")
        elif isinstance(exc, ZstestError):
            self.finished("failed", False, exc.message)
        else:
            self.finished("failed", False, f"{exc.__class__.__name__}: {exc}")

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def duration_s(self) -> float:
        return self.data["duration_s"]

    def step_took(self, name: str, seconds: float) -> None:
        self.durations[name] = round(self.durations.get(name, 0.0) + seconds, 2)

    def save(self, build_dir: Optional[Path]) -> None:
        if build_dir is None:
            return
        self.data["duration_s"] = round(time.monotonic() - self.t0, 2)
        self.data["durations"] = dict(self.durations)
        save_build(build_dir, self.data)
