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
