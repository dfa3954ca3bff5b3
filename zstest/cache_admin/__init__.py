"""The cache's own housekeeping: what takes the space (show) and removing old parts (prune).

Sizes are counted like `du`: st_blocks * 512, symlinks never followed, a hard-linked file
once. Prune takes the same flock files the stages take (zstest/cache.py file_lock paths:
locks/worktree-<tree>-<purpose>.lock, locks/objs-<objdir>.lock, locks/image-<digest>.lock,
locks/repo-<tree>.lock, locks/test-build-<name>.lock, locks/coverage-map-<key>.lock,
b4check/<key>/run.lock, watch/watch.lock), without waiting: an entry whose lock is held is in
use, skipped and named. It never deletes outside the cache root (resolved paths
are checked) and never follows a symlink when deleting.

The package: usage.py (areas, entries, sizes: show), prune.py (locks in use, removal, prune),
render.py (both as text).
"""

from __future__ import annotations

from .prune import (PruneItem, PruneRequest, PruneResult, RefusedPath, parse_areas, paths_in_use,
                    prune_cache, remove_inside, try_lock)
from .render import render_prune, render_report
from .usage import (AREAS, DEFAULT_IDLE_DAYS, DEFAULT_KEEP, DEFAULT_PRUNE_AREAS, IMAGES_KEPT,
                    NEVER_PRUNED, PRUNABLE_AREAS, STAMPED_AREAS, UNFINISHED_GRACE_S, AreaReport,
                    CacheEntry, CacheReport, DiskUsage, LastLink, Usage, area_entries, disk_usage,
                    human, last_link, resolved_root, show_cache)

__all__ = ["AREAS", "DEFAULT_IDLE_DAYS", "DEFAULT_KEEP", "DEFAULT_PRUNE_AREAS", "IMAGES_KEPT",
           "NEVER_PRUNED", "PRUNABLE_AREAS", "STAMPED_AREAS", "UNFINISHED_GRACE_S", "AreaReport",
           "CacheEntry", "CacheReport", "DiskUsage", "LastLink", "PruneItem", "PruneRequest",
           "PruneResult", "RefusedPath", "Usage", "area_entries", "disk_usage", "human",
           "last_link", "parse_areas", "paths_in_use", "prune_cache", "remove_inside",
           "render_prune", "render_report", "resolved_root", "show_cache", "try_lock"]
