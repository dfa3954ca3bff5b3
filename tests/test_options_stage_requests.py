"""The stage requests that build and boot (bisect, b4-check, compare --perf, mutate) hold one
build request and one boot request (zstest/options.py's BuildsAndBoots): what they read of
them (suite, keyword, configs...) is theirs, never a second copy that could disagree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from zstest import options
from zstest.b4check import CheckRequest
from zstest.bisect import BisectRequest
from zstest.build import BuildRequest
from zstest.mutate.run import MutateRequest
from zstest.perf.run import DEFAULT_SUITE, PerfRequest

# Each stage request with the fields it needs besides build and boot.
STAGES = [(BisectRequest, {"series": "s.mbx", "out": Path("o")}),
          (CheckRequest, {"message": b"", "topdir": Path("."), "kernel": Path("/src/linux")}),
          (PerfRequest, {"a": "a", "b": "b", "out": Path("o")}),
          (MutateRequest, {})]


@pytest.mark.parametrize("stage,fields", STAGES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_stage_request_reads_its_build_and_boot(stage, fields):
    build = BuildRequest(base="v6.1", configs=["base", "debug"], coverage=True)
    boot = options.boot_template(suite="migration", keyword="hotunplug", memory_mb=1536)
    req = stage(**fields, build=build, boot=boot)
    assert isinstance(req, options.BuildsAndBoots)
    assert (req.base, req.configs, req.coverage, req.suite, req.keyword, req.memory_mb) == \
        ("v6.1", ["base", "debug"], True, "migration", "hotunplug", 1536)
    # a boot request set per use is the only truth: the stage cannot keep an older suite
    req.boot = replace(req.boot, suite="default", keyword="")
    assert (req.suite, req.keyword) == ("default", "")


@pytest.mark.parametrize("stage,fields", STAGES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_stage_request_without_options_has_the_templates(stage, fields):
    req = stage(**fields)
    assert req.build == options.build_template()
    assert (req.boot.build_dir, req.boot.out) == (None, None)
    assert req.suite == (DEFAULT_SUITE if stage is PerfRequest else "default")
    assert req.build is not stage(**fields).build        # one template each, never shared
