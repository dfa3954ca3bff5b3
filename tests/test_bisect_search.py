"""The search of `zstest bisect` over prefix verdicts (the build/boot steps are tested end to end
in test_demo_series.py; here each prefix's verdict is given, to cover long series and skips)."""

from __future__ import annotations

import json

import pytest

from zstest.bisect import BisectRequest, Step, _Bisector, render_text
from zstest.errors import EXIT_BUILD, EXIT_OK, EXIT_TEST_FAILED


class _Given(_Bisector):
    """A bisector whose prefixes have known verdicts: 'g'ood, 'b'ad, 's'kip; index 0 = base."""

    def __init__(self, verdicts: str, tmp_path, **kw):
        super().__init__(BisectRequest(series="given", out=tmp_path, on_progress=lambda s: None,
                                       **kw))
        self.verdicts = verdicts
        self.tested = []

    def load(self):
        self.n = len(self.verdicts) - 1
        self.subjects = {k: f"patch {k}" for k in range(1, self.n + 1)}
        self.series = type("S", (), {"revision": "9"})()

    def test(self, k):
        if k in self.steps:
            return self.steps[k]
        self.tested.append(k)
        verdict = {"g": "good", "b": "bad", "s": "skip"}[self.verdicts[k]]
        return self._keep(Step(prefix=k, subject=self.subjects.get(k, "base"), verdict=verdict,
                               reason="build broke" if verdict == "skip" else ""))


def test_linear_walks_in_order_and_stops_at_the_first_bad(tmp_path):
    b = _Given("gsgbb", tmp_path)
    r = b.run()
    assert (r.first_bad, r.exit_code, b.tested) == (3, EXIT_TEST_FAILED, [1, 2, 3])
    assert json.loads((tmp_path / "bisect.json").read_text())["first_bad"] == 3
    assert "skip" in render_text(r) and "3/4" in render_text(r)


def test_skip_right_before_the_bad_leaves_a_range(tmp_path):
    r = _Given("ggsb", tmp_path).run()
    assert r.first_bad is None and r.candidates == [2, 3] and r.exit_code == EXIT_TEST_FAILED
    assert "one of 2, 3" in r.message


def test_binary_search_tests_log_n_prefixes(tmp_path):
    verdicts = "g" + "g" * 12 + "b" * 7        # 19 patches, first bad is 13
    b = _Given(verdicts, tmp_path, strategy="binary")
    r = b.run()
    assert r.first_bad == 13
    assert len(b.tested) <= 6, b.tested       # the full series + ~log2(19)


@pytest.mark.parametrize("verdicts,first_bad,cands", [
    ("g" + "g" * 9 + "s" * 3 + "b" * 7, None, [10, 11, 12, 13]),
    ("g" + "g" * 5 + "s" + "g" * 3 + "b" * 10, 10, [10]),
])
def test_binary_search_steps_around_skips(tmp_path, verdicts, first_bad, cands):
    r = _Given(verdicts, tmp_path, strategy="binary").run()
    assert (r.first_bad, r.candidates) == (first_bad, cands)


def test_nothing_fails_is_exit_0_and_names_skipped(tmp_path):
    r = _Given("gsgg", tmp_path).run()
    assert r.exit_code == EXIT_OK and "1 did not build" in r.message


def test_base_checked_on_request(tmp_path):
    b = _Given("bgb", tmp_path, test_base=True)
    r = b.run()
    assert r.exit_code == EXIT_TEST_FAILED and "base tree already fails" in r.message
    assert b.tested == [0]


def test_full_series_not_building_is_exit_4_in_binary(tmp_path):
    r = _Given("g" + "g" * 7 + "s", tmp_path, strategy="binary").run()
    assert r.exit_code == EXIT_BUILD and "does not build" in r.message


class _Booting(_Bisector):
    """A bisector whose pipeline is given per prefix: 'g' passes, 'n' does not boot (the
    guest never came up, BootFailed, exit 5). The real test() judges the outcome."""

    def __init__(self, plan: str, tmp_path):
        super().__init__(BisectRequest(series="given", out=tmp_path, on_progress=lambda s: None))
        self.plan = self.verdicts = plan
        self.tested = []

    def load(self):
        _Given.load(self)
        self.series.patches = [type("P", (), {"subject": f"patch {k}"})()
                               for k in range(1, self.n + 1)]


@pytest.fixture
def booting(monkeypatch):
    import zstest.pipeline as pipeline
    from zstest.errors import BootFailed
    from zstest.results import RunResults

    def run_with(bisector: _Booting):
        def fake_pipeline(req):
            k = req.build.series_limit or 0
            bisector.tested.append(k)
            outcome = pipeline.PipelineOutcome(results_dir=bisector.out / f"prefix-{k:02d}")
            if bisector.plan[k] == "n":
                outcome.boot_error = BootFailed(
                    "the guest did not boot: the guest printed no ready marker within 30 s "
                    "(sshd never started?); console log: x")
            else:
                outcome.run = RunResults(status="passed")
            return outcome
        monkeypatch.setattr(pipeline, "run_pipeline", fake_pipeline)
        return bisector.run()
    return run_with


def test_a_prefix_that_does_not_boot_is_bad_once_a_kernel_booted(tmp_path, booting):
    b = _Booting("ggn", tmp_path)
    r = booting(b)
    assert (r.first_bad, r.exit_code, b.tested) == (2, EXIT_TEST_FAILED, [1, 2])
    step = next(s for s in r.steps if s.prefix == 2)
    assert step.verdict == "bad" and step.reason.startswith("did not boot: the guest printed")


def test_the_base_is_booted_when_the_first_prefix_does_not_boot(tmp_path, booting):
    b = _Booting("gn", tmp_path)
    r = booting(b)
    assert (r.first_bad, r.exit_code, b.tested) == (1, EXIT_TEST_FAILED, [1, 0])


def test_nothing_boots_is_the_machine_exit_5(tmp_path, booting):
    from zstest.errors import BootFailed
    b = _Booting("nn", tmp_path)
    with pytest.raises(BootFailed) as exc:
        booting(b)
    assert exc.value.exit_code == 5 and b.tested == [1, 0]
