"""benchmarks/rule_probe.py: the label rule against the rule tuned on the train users
(persoma.tuned_rule), per history size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import rule_probe  # noqa: E402


@pytest.fixture()
def clean_config():
  from persoma.seqio_tasks import config
  yield config
  config.reset_config()


def test_probe_runs_on_synthetic_data_and_scores_the_rule_as_the_baseline(clean_config, capsys,
                                                                          tmp_path):
  argv = ["--dataset", "synthetic", "--history", "10", "--json", str(tmp_path / "p.json")]
  assert rule_probe.main(argv) == 0
  out = capsys.readouterr().out.strip().splitlines()
  summary = json.loads(out[-1])
  assert json.loads((tmp_path / "p.json").read_text()) == summary
  assert summary["command"] == "python benchmarks/rule_probe.py " + " ".join(argv)
  row = summary["sizes"]["10"]
  from persoma import baselines
  from persoma.seqio_tasks import tasks
  want = baselines.evaluate_baseline("rule", tasks.load_data("synthetic"), split="test",
                                     history_size=10)
  assert row["rule_test"]["f1"] == pytest.approx(want["f1"], abs=1e-4)
  assert row["tuned_train"]["f1"] >= row["rule_train"]["f1"]
  assert set(row["fitted"]) == {"liked", "disliked"}
  tuned = baselines.evaluate_baseline("rule_tuned", tasks.load_data("synthetic"), split="test",
                                      history_size=10)
  assert row["tuned_test"]["f1"] == pytest.approx(tuned["f1"], abs=1e-4)
  assert row["fitted"] == tuned["fitted"]
  assert any(line.startswith("N=10 recency: test F1 rule") for line in out)
  view = row["rationale_view_test_f1"]  # the bindings' rule, exact and as a rationale says
  assert set(view) == {"exact", "two_decimals", "no_counts", "as_written"}
  if "label_config_fit" not in row:  # the bindings hold the fit itself
    assert view["exact"] == row["tuned_test"]["f1"]
  assert 0 <= row["rationale_view_test_users_changed"] <= want["users"]
  # the gin bindings hold a rule a LabelConfig can: the fit's, or the best such rule beside it
  fit = row.get("label_config_fit", row)["fitted"]
  assert fit["liked"]["shrink"] == fit["disliked"]["shrink"] == 0
  assert row["gin"]["SHOWN_MIN_GENRE_COUNT"] == fit["liked"]["min_count"] == fit["disliked"][
      "min_count"]
  assert row["gin"]["SHOWN_LIKE_THRESHOLD"] == fit["liked"]["threshold"]


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
  assert rule_probe.main(["--data_dir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere not found" in capsys.readouterr().err


def test_mean_noise_scores_the_rules_on_perturbed_means(clean_config, capsys):
  argv = ["--dataset", "synthetic", "--history", "10", "--mean_noise", "0,0.5,3",
          "--noise_draws", "2"]
  assert rule_probe.main(argv) == 0
  row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sizes"]["10"]
  noise = row["mean_noise_test_f1"]
  assert set(noise) == {"0.0", "0.5", "3.0"}
  # no noise: the plain scores; a 3-star SD scrambles the means and costs F1
  assert noise["0.0"] == {"rule": row["rule_test"]["f1"], "tuned": row["tuned_test"]["f1"]}
  assert noise["3.0"]["rule"] < noise["0.0"]["rule"]


def test_noisy_means_moves_each_mean_by_the_given_sd():
  import numpy as np
  counts = np.full((2000, 19), 4.0)
  stats = {"sums": 3.0 * counts, "counts": counts}
  out = rule_probe.noisy_means(stats, 0.2, np.random.default_rng(0))
  err = out["sums"] / counts - 3.0
  assert abs(err.std() - 0.2) < 0.01 and abs(err.mean()) < 0.01
  assert out["counts"] is counts and stats["sums"][0, 0] == 12.0   # the input is not changed


@pytest.mark.parametrize("bad", ["x", "-0.1"])
def test_bad_mean_noise_is_a_usage_error(bad, capsys):
  with pytest.raises(SystemExit):
    rule_probe.main(["--dataset", "synthetic", "--mean_noise", bad])
  assert "--mean_noise" in capsys.readouterr().err


def test_as_written_states_rounded_means_without_counts_as_a_rationale_does():
  import numpy as np
  from persoma import tuned_rule
  from persoma.data import genres, labels
  g = genres.GENRE_INDEX
  sums, counts = np.zeros((2, 19)), np.zeros((2, 19))
  # row 0 shows the whole history (label rule: 3 movies); row 1 a window (this rule: 2)
  for row, name, c, s in [(0, "Action", 2, 10.0), (0, "Drama", 3, 11.0),
                          (1, "Action", 3, 11.0), (1, "Drama", 6, 22.0), (1, "War", 1, 5.0)]:
    counts[row, g[name]], sums[row, g[name]] = c, s
  stats = {"sums": sums, "counts": counts, "exact": np.array([True, False]),
           "mu": np.full(2, 3.5)}
  rule = tuned_rule.TunedRule.from_label_config(labels.LabelConfig(
      min_genre_count=2, like_threshold=3.65, max_liked=1))
  exact = tuned_rule.TunedRule.from_label_config(labels.LabelConfig())
  out = rule_probe.as_written(stats, rule, exact)
  listed = out["counts"] > 0
  assert np.flatnonzero(listed[0]).tolist() == [g["Drama"]]  # Action has 2 < 3 movies
  assert np.flatnonzero(listed[1]).tolist() == [g["Action"], g["Drama"]]  # War 1 < 2
  assert set(out["counts"][1][listed[1]]) == {2.0}  # no counts: all the same
  np.testing.assert_allclose(out["sums"][listed] / out["counts"][listed], [3.67, 3.67, 3.67])
  # Action and Drama tie at 3.67; the rule keeps one: Drama by its count (6 > 3), Action by
  # canonical order when the counts are not written
  pick = lambda st: tuned_rule.as_labels(tuned_rule.predict(st, rule, exact))[1].liked
  assert pick(stats) == ("Drama",) and pick(out) == ("Action",)
  assert pick(rule_probe.as_written(stats, rule, exact, counts=True)) == ("Drama",)
  unrounded = rule_probe.as_written(stats, rule, exact, rounded=False)
  assert unrounded["sums"][1, g["Action"]] / 2 == pytest.approx(11 / 3)
  assert stats["counts"][1, g["Drama"]] == 6  # the input is not changed
