"""benchmarks/exact_history_probe.py: scores split by whole-history and window users, the
rationale check and the run's macros. Synthetic inputs, no decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path  # noqa: F401
import exact_history_probe as probe


def test_group_scores_split_users_by_whole_history():
  truth = np.zeros((4, 38), bool)
  truth[:, 0] = True
  pred = truth.copy()
  pred[2:, 0] = False  # wrong on the two window users
  pred[2:, 1] = True
  exact = np.asarray([True, True, False, False])
  s = probe.group_scores(truth, {"run": pred, "rule": truth}, exact)
  assert s["run"]["whole_history"] == pytest.approx(1.0)
  assert s["run"]["window"] == pytest.approx(0.0)
  assert s["run"]["all"] == pytest.approx(2 / 3)  # class 0: P 1, R 1/2
  assert s["rule"] == {"all": 1.0, "whole_history": 1.0, "window": 1.0}
  none = probe.group_scores(truth, {"run": pred}, np.zeros(4, bool))
  assert none["run"]["whole_history"] is None


def test_rationale_figures_come_from_rationale_check(tmp_path):
  targets = ["Shown: Action 4.00, Drama 3.50. Liked Genres: Action. Not Liked Genres: None",
             "Shown: Comedy 2.00. Liked Genres: None. Not Liked Genres: Comedy"]
  preds = ["Shown: Action 4.10, Drama 3.50. Liked Genres: Action. Not Liked Genres: None",
           "Shown: Comedy 2.20, War 3.00. Liked Genres: None. Not Liked Genres: Comedy"]
  path = tmp_path / "inferences_test_step1.jsonl"
  path.write_text("".join(json.dumps({"user_id": i, "target": t, "prediction": p}) + "\n"
                          for i, (t, p) in enumerate(zip(targets, preds))))
  r = probe.rationale_figures(path, targets)
  assert r["same_genres"] == pytest.approx(0.5)
  assert r["mean_abs_error"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
  assert probe.rationale_figures(path, ["Liked Genres: Action. Not Liked Genres: None"]) is None


def test_run_macros_reads_config_gin_and_names_a_missing_file(tmp_path):
  (tmp_path / "config.gin").write_text("HISTORY_SIZE = 50\nSAMPLER = 'recency'\n"
                                       "x.y.z = 3\nSHOWN_LIKE_THRESHOLD = 3.65\n")
  assert probe.run_macros(tmp_path) == {"HISTORY_SIZE": "50", "SAMPLER": "'recency'",
                                        "SHOWN_LIKE_THRESHOLD": "3.65"}
  with pytest.raises(SystemExit, match=r"nope/config.gin does not exist"):
    probe.run_macros(tmp_path / "nope")


_TUNED_RUN_CONFIG = """\
from __gin__ import dynamic_registration
from persoma.data import labels
from persoma.seqio_tasks import config as data_config

HISTORY_SIZE = 50
SAMPLER = 'recency'
data_config.PersomaDataConfig.target_rationale = True
data_config.PersomaDataConfig.shown_label_config = @shown/labels.LabelConfig()
shown/labels.LabelConfig.like_threshold = 3.65
"""


def test_a_run_without_a_shown_label_rule_is_an_error_naming_its_config(tmp_path):
  (tmp_path / "config.gin").write_text("HISTORY_SIZE = 50\nSAMPLER = 'recency'\n")
  with pytest.raises(SystemExit, match=r"config.gin binds no PersomaDataConfig.shown_label_config"):
    probe.probe_run(None, tmp_path, "test")


def test_a_malformed_inference_file_is_an_error_naming_its_line(tmp_path, monkeypatch):
  (tmp_path / "config.gin").write_text(_TUNED_RUN_CONFIG)
  bad = tmp_path / "inferences_test_step5.jsonl"
  bad.write_text('{"user_id": 1, "target": "x", "prediction": "y"}\n{"user_id": 2\n')
  monkeypatch.setattr(probe.seed_ensemble, "member_inferences", lambda model, split: bad)
  with pytest.raises(SystemExit, match=r"error: .*step5\.jsonl:2: not a persoma-eval inference"):
    probe.probe_run(None, tmp_path, "test")
