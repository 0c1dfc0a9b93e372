"""benchmarks/embedding_probe.py: genre probes over item embeddings and the rule on decoded genres."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import embedding_probe  # noqa: E402


def test_cross_fit_recovers_a_linear_code_and_not_noise():
  rng = np.random.default_rng(0)
  y = (rng.random((400, 5)) < 0.3).astype(np.float64)
  y[np.arange(400), rng.integers(0, 5, 400)] = 1.0  # every movie has a genre
  x = np.concatenate([y @ rng.normal(size=(5, 16)), 0.01 * rng.normal(size=(400, 16))], axis=1)
  dec = embedding_probe.decode_sets(embedding_probe.cross_fit(x, y, lam=1e-3, seed=0))
  m = embedding_probe.set_metrics(y.astype(bool), dec)
  assert m["micro_f1"] > 0.99
  # pure noise carries nothing: held-out decoding falls to chance
  noise = embedding_probe.decode_sets(
      embedding_probe.cross_fit(rng.normal(size=(400, 16)), y, lam=1e-3, seed=0))
  assert embedding_probe.set_metrics(y.astype(bool), noise)["micro_f1"] < 0.6


def test_decode_sets_keeps_at_least_one_genre():
  dec = embedding_probe.decode_sets(np.array([[0.1, 0.2, 0.05], [0.9, 0.7, 0.1]]))
  assert dec.tolist() == [[False, True, False], [True, True, False]]


@pytest.fixture()
def clean_config():
  from persoma.seqio_tasks import config
  yield config
  config.reset_config()


def test_probe_on_synthetic_data_matches_the_rule_baseline(clean_config, capsys):
  assert embedding_probe.main(["--dataset", "synthetic", "--encoder", "hashing",
                               "--history", "10", "--split", "all"]) == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  from persoma import baselines
  from persoma.seqio_tasks import tasks
  want = baselines.evaluate_baseline("rule", tasks.load_data("synthetic"), split="all",
                                     history_size=10)
  assert summary["rule_true_genres"]["f1"] == pytest.approx(want["f1"])
  assert "0:genre sentence" in summary["slots"] and "2:description" in summary["slots"]
  for slot in summary["slots"].values():
    assert 0.0 <= slot["rule_f1"] <= 1.0 and 0.0 <= slot["micro_f1"] <= 1.0


def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
  assert embedding_probe.main(["--data_dir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere not found" in capsys.readouterr().err
