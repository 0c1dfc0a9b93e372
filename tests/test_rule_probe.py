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
  # the gin bindings hold a rule a LabelConfig can: the fit's, or the best such rule beside it
  fit = row.get("label_config_fit", row)["fitted"]
  assert fit["liked"]["shrink"] == fit["disliked"]["shrink"] == 0
  assert row["gin"]["SHOWN_MIN_GENRE_COUNT"] == fit["liked"]["min_count"] == fit["disliked"][
      "min_count"]
  assert row["gin"]["SHOWN_LIKE_THRESHOLD"] == fit["liked"]["threshold"]


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
  assert rule_probe.main(["--data_dir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere not found" in capsys.readouterr().err
