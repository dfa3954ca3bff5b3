"""decode's git side: the built commit in zstest's cached repository (build.json names it),
file text at that commit, the files the series touched, and attribution of a frame to the
patches that changed its line (`git blame`) or its function (`git log -L`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..gitsafe import cache_git_dir, cache_worktree, read_objects, run_git
from ..manifests import BuildKernel, PatchRecord
from ..proc import CommandError
from .symbols import Decoded, PatchRef, find_definition

log = logging.getLogger("zstest.decode")

GIT_TIMEOUT_S = 120


class GitSide:
    """The Decoder's reading of the build's repository (a mixin: the Decoder holds the state)."""

    def _setup_git(self) -> None:
        # build.json is untrusted input (it travels between CI runners and people): git gets
        # only full object ids and only one of the cache's own repositories (repos/<tree>/git),
        # and reads only its objects (gitsafe.read_objects), never its config or attributes.
        from ..tree import is_object_id
        kernel = self.manifest.kernel if self.manifest else BuildKernel()
        self.base = kernel.base
        if self.base is not None and not is_object_id(self.base):
            self.notes.append(f"build.json's kernel.base {str(self.base)[:60]!r} is not a full "
                              f"commit id: ignored")
            self.base = None
        self.git_dir = kernel.git_dir
        if self.git_dir is not None:
            inside = cache_git_dir(self.git_dir)
            if inside is None:
                self.notes.append(f"build.json's kernel.git_dir {str(self.git_dir)[:80]!r} is not "
                                  f"one of the zstest cache's repositories: not read")
            self.git_dir = str(inside) if inside else None
        worktree = cache_worktree(kernel.worktree)
        if not self.git_dir and worktree is not None and worktree.is_dir():
            # builds made before build.json named git_dir: the worktree knows its repository
            try:
                out = run_git(["rev-parse", "--path-format=absolute", "--git-common-dir"],
                              cwd=worktree, timeout=GIT_TIMEOUT_S).stdout
                self.git_dir = str(cache_git_dir(out.strip()) or "") or None
            except CommandError as exc:
                log.info("no git dir for %s: %s", worktree, exc)
        series = self.manifest.series if self.manifest else None
        patches = series.patches if series else []
        bad = [p for p in patches if p.commit and not is_object_id(p.commit)]
        if bad:
            self.notes.append(f"build.json names {len(bad)} patch commit(s) that are not full "
                              f"commit ids: ignored")
        commits = [p for p in patches if is_object_id(p.commit)]
        for p in commits:
            self.patch_of_commit[p.commit] = p
        self.commit = commits[-1].commit if commits else self.base
        if series and not commits:
            self.notes.append("build.json names no commit per patch: frames are not attributed "
                              "to patches (rebuild with a newer zstest)")
        if self.git_dir and not Path(self.git_dir).is_dir():
            self.notes.append(f"the cached repository {self.git_dir} is gone: no source lines")
            self.git_dir = None
        if not self.git_dir and self.manifest:
            self.notes.append("no cached kernel repository: frames resolve without source lines")

    def _git(self, args: List[str], quiet: bool = False) -> Optional[str]:
        if not self.git_dir:
            return None
        try:
            return read_objects(Path(self.git_dir), args, timeout=GIT_TIMEOUT_S).stdout
        except CommandError as exc:
            (log.debug if quiet else log.info)("decode: %s", exc)
            return None

    def blob(self, path: str) -> Optional[str]:
        """The text of path at the built commit (None when not in the tree)."""
        key = (self.commit or "", path)
        if key not in self._blobs:
            text = None
            if self.commit and self.git_dir and not path.startswith("/"):
                text = self._git(["cat-file", "blob", "--end-of-options", f"{self.commit}:{path}"],
                                 quiet=True)
            self._blobs[key] = text
        return self._blobs[key]

    def touched_files(self) -> set:
        if self.touched is None:
            self.touched = set()
            if self.base and self.commit and self.commit != self.base:
                out = self._git(["diff", "--no-textconv", "--no-ext-diff", "--name-only",
                                 "--end-of-options", self.base,
                                 self.commit]) or ""
                self.touched = {line.strip() for line in out.splitlines() if line.strip()}
        return self.touched

    # -- attribution

    def _attribute(self, decoded: Decoded) -> None:
        if not self.patch_of_commit or not self.git_dir:
            return
        touched = self.touched_files()
        seen = set()
        for i, frame in enumerate(decoded.frames):
            if not frame.file:
                continue
            # (function, file, line) of the frame and, when inlined, of each call site outwards
            sites = [(frame.inline_function or frame.function, frame.file, frame.line)]
            sites += [(c.get("function"), c.get("file"), c.get("line")) for c in frame.inlined]
            refs: List[Tuple[str, PatchRecord]] = []
            exact = frame.source in ("bug-table", "debuginfo")
            for function, path, line in sites:
                if path not in touched:
                    continue
                patch = self._blame(path, line) if exact and line else None
                if patch:
                    refs.append(("line", patch))
                if function:
                    refs += [("function", p) for p in self._function_patches(path, function)]
            refs.sort(key=lambda r: r[0] != "line")
            for how, patch in refs:
                key = (patch.index, how)
                if key in seen:
                    continue
                seen.add(key)
                decoded.patches.append(PatchRef(index=patch.index, subject=patch.subject, how=how,
                                                frame=i, function=frame.function,
                                                location=frame.location))

    def _blame(self, path: str, line: int) -> Optional[PatchRecord]:
        # git 2.39's blame takes no --end-of-options: self.commit is a checked object id.
        out = self._git(["blame", "--no-textconv", "--porcelain", "-L", f"{line},{line}", self.commit, "--", path])
        if not out:
            return None
        sha = out.split(" ", 1)[0]
        return self.patch_of_commit.get(sha)

    def _function_patches(self, path: str, function: str) -> List[PatchRecord]:
        text = self.blob(path)
        span = find_definition(text, function) if text else None
        if not span or not self.base:
            return []
        out = self._git(["log", "--no-textconv", "--no-ext-diff", f"-L{span[0]},{span[1]}:{path}", "--format=%H", "-s",
                         "--end-of-options", f"{self.base}..{self.commit}"]) or ""
        patches = [self.patch_of_commit[h] for h in out.split() if h in self.patch_of_commit]
        return sorted(patches, key=lambda p: p.index)
