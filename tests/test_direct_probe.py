"""benchmarks/direct_probe.py: the set-pooling adapter with a direct 38-label head, no LM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import direct_probe  # noqa: E402

GENRES = ("Action", "Comedy", "Drama", "Horror", "War")


class _Ex:
  def __init__(self, liked, disliked):
    self.liked, self.disliked = liked, disliked


def test_targets_put_liked_then_disliked_indicators():
  y = direct_probe.targets([_Ex(("Drama", "Action"), ("War",)), _Ex((), ("Comedy",))], GENRES)
  assert y.shape == (2, 10)
  assert np.flatnonzero(y[0]).tolist() == [0, 2, 9]
  assert np.flatnonzero(y[1]).tolist() == [6]


def test_decode_ranks_caps_at_three_and_keeps_a_genre_on_its_likelier_side():
  liked = [0.9, 0.6, 0.7, 0.55, 0.52]
  disliked = [0.1, 0.8, 0.3, 0.4, 0.51]
  (pair,) = direct_probe.decode(np.array([liked + disliked]), GENRES)
  # Comedy and War are > 0.5 on both sides: Comedy stays disliked, War liked, where it is the
  # 4th candidate and cut by the cap of 3
  assert pair == (("Action", "Drama", "Horror"), ("Comedy",))
  (empty,) = direct_probe.decode(np.full((1, 10), 0.2), GENRES)
  assert empty == ((), ())
  # a lower threshold admits more genres
  probs = np.array([[0.4, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.45, 0.1, 0.2]])
  assert direct_probe.decode(probs, GENRES) == [((), ())]
  assert direct_probe.decode(probs, GENRES, threshold=0.25) == [(("Action", "Comedy"),
                                                                 ("Drama",))]


@pytest.fixture()
def clean_config():
  from persoma.seqio_tasks import config
  yield config
  config.reset_config()


def test_probe_runs_on_synthetic_data_beside_the_rule_baseline(clean_config, capsys):
  assert direct_probe.main(["--dataset", "synthetic", "--encoder", "hashing", "--history", "10",
                            "--steps", "20", "--eval_every", "10", "--batch", "8",
                            "--hidden", "32"]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  summary = json.loads(out[-1])
  from persoma import baselines
  from persoma.data import build_examples
  from persoma.seqio_tasks import tasks
  data = tasks.load_data("synthetic")
  want = baselines.evaluate_baseline("rule", data, split="test", history_size=10)
  assert summary["rule"]["f1"] == pytest.approx(want["f1"])
  assert summary["train_histories"] == len(build_examples(
      data, split="train", history_size=10, sampler="recency", resamples=4))
  assert summary["best_step"] in (10, 20) and 0.0 <= summary["direct"]["f1"] <= 1.0
  assert sum("validation F1" in line for line in out) == 2


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
  assert direct_probe.main(["--data_dir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere not found" in capsys.readouterr().err
  assert direct_probe.main(["--dataset", "synthetic", "--steps", "0"]) == 2
  assert "--steps and --batch must be >= 1" in capsys.readouterr().err
