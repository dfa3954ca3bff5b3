"""The one way zstest runs git, on its own cached repositories and on anyone else's.

A repository's own config and attributes can make git run programs (hooks, core.fsmonitor,
diff.<x>.textconv, filter.<x>.smudge, merge.<x>.driver, ...), and an artifact (build.json) may
name a repository a patch planted. So every git gets: no system or global config, no inherited
GIT_* variables, command-line config that pins every program-running key with a fixed name (an
empty hooks dir, no fsmonitor, no pager, editor, askpass, credential helper or network
protocol), and no attributes file of the user's. Drivers named by a repository's attributes
(textconv, filters, merge drivers) have no fixed key to pin: commands that could run one get
--no-textconv / --no-ext-diff, and reads of a repository zstest does not trust
(read_objects) run in zstest's own empty repository, borrowing only the other's objects, so
its config, attributes and hooks are never read at all.

tests/test_hardening_git.py checks that no other module puts "git" in an argv.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .cache import cache_dir, cache_root
from .proc import CommandResult, run

GIT_TIMEOUT_S = 1800

# Identity and dates are the cache's own: the user's config never reaches the cache's repos.
IDENTITY_ENV = {"GIT_AUTHOR_NAME": "zstest", "GIT_AUTHOR_EMAIL": "zstest@localhost",
                "GIT_COMMITTER_NAME": "zstest", "GIT_COMMITTER_EMAIL": "zstest@localhost"}

# Program-running keys with a fixed name; command-line config wins over a repository's own.
PINNED_CONFIG = (
    ("core.fsmonitor", "false"),
    ("core.attributesFile", os.devnull),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("core.sshCommand", "false"),
    ("core.askPass", "false"),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),   # clone --shared of the user's local tree
)


def hooks_dir() -> Path:
    """An empty directory zstest owns: core.hooksPath for every git, so no hook ever runs."""
    return cache_dir("git-isolation", "hooks")


def git_env(extra: Optional[dict] = None, trusted: Optional[Path] = None) -> dict:
    """The isolated environment of one git: no system/global config, pinned keys, no pager.

    trusted: the user's own tree, named on the command line: git may read it when another
    user owns it (safe.directory, as the user's global config may have said).
    """
    pinned = PINNED_CONFIG + (("core.hooksPath", str(hooks_dir())),)
    if trusted is not None:
        pinned += (("safe.directory", str(trusted)),)
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "false", "SSH_ASKPASS": "false",
           "GIT_PAGER": "cat", "GIT_PROTOCOL_FROM_USER": "0", "GIT_NO_REPLACE_OBJECTS": "1",
           "GIT_TEMPLATE_DIR": str(cache_dir("git-isolation", "templates")),
           "GIT_CONFIG_COUNT": str(len(pinned))}
    for i, (key, value) in enumerate(pinned):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    env.update(IDENTITY_ENV)
    env.update(extra or {})
    return env


def _inherited_git_vars(env: dict) -> List[str]:
    # GIT_DIR, GIT_WORK_TREE, GIT_EXTERNAL_DIFF, GIT_CONFIG_PARAMETERS ... of the caller's shell
    return [k for k in os.environ if k.startswith("GIT_") and k not in env]


def run_git(args: Sequence[str], *, git_dir: Optional[Path] = None,
            work_tree: Optional[Path] = None, cwd: Optional[Path] = None,
            env: Optional[dict] = None, check: bool = True, timeout: float = GIT_TIMEOUT_S,
            input: Optional[str] = None, on_line: Optional[Callable[[str], None]] = None,
            trusted: Optional[Path] = None) -> CommandResult:
    """git args, isolated (see the module's docstring); git_dir/work_tree given explicitly;
    trusted: the user's tree it reads (git_env)."""
    full_env = git_env(env, trusted)
    argv = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    if work_tree is not None:
        argv += ["--work-tree", str(work_tree)]
    return run(argv + [str(a) for a in args], cwd=cwd, env=full_env, check=check,
               timeout=timeout, input=input, on_line=on_line,
               unset=_inherited_git_vars(full_env))


def reader_repo() -> Path:
    """zstest's own empty bare repository, made once: read_objects runs git in it."""
    reader = cache_dir("git-isolation") / "reader.git"
    if not (reader / "objects").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".reader-", dir=reader.parent))
        try:
            run_git(["init", "--quiet", "--bare", "--", str(tmp)], timeout=60)
            os.replace(tmp, reader)
        except OSError:
            pass            # another zstest made it first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return reader


def read_objects(objects_of: Path, args: Sequence[str], *, check: bool = True,
                 timeout: float = GIT_TIMEOUT_S) -> CommandResult:
    """A read-only git (cat-file, blame, log, diff) on objects_of's objects, in reader_repo():
    objects_of's config, attributes, hooks and refs are never read."""
    objects = str(Path(objects_of) / "objects")
    if ":" in objects or objects.startswith('"'):
        # the variable is a colon-separated list; git reads a C-quoted entry whole
        objects = '"' + objects.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return run_git(list(args), git_dir=reader_repo(), check=check, timeout=timeout,
                   env={"GIT_ALTERNATE_OBJECT_DIRECTORIES": objects})


def user_config_value(key: str) -> str:
    """The user's own git setting (global, else system), never a repository's: '' when unset."""
    for scope in ("--global", "--system"):
        res = run(["git", "config", scope, "--get", "--", key], check=False, timeout=10)
        if res.stdout.strip():
            return res.stdout.strip()
    return ""


def cache_git_dir(path: object, root: Optional[Path] = None) -> Optional[Path]:
    """path resolved when it is one of the cache's own repositories (repos/<tree>/git), else None.

    An artifact's git dir: anything else inside the cache (a repository nested in a scratch
    worktree, planted by a patch) is not a repository zstest made.
    """
    return _cache_entry(path, "repos", "git", root)


def cache_worktree(path: object) -> Optional[Path]:
    """path resolved when it is one of the cache's scratch worktrees (worktrees/<tree>/<purpose>)."""
    return _cache_entry(path, "worktrees", None, None)


def _cache_entry(path: object, top: str, leaf: Optional[str],
                 root: Optional[Path]) -> Optional[Path]:
    if isinstance(path, Path):
        path = str(path)
    if not isinstance(path, str) or not path or "\0" in path:
        return None
    try:
        resolved = Path(path).resolve()
        rel = resolved.relative_to(((root or cache_root()) / top).resolve())
    except (OSError, ValueError, RuntimeError):
        return None
    if len(rel.parts) != 2 or (leaf is not None and rel.parts[1] != leaf):
        return None
    return resolved
