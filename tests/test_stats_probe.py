"""benchmarks/stats_probe.py: a readout of the shown items' exact genre statistics (or of
GenreStatsAdapter over their embeddings), beside the label rule."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import stats_probe  # noqa: E402


def test_rating_histograms_count_each_star_per_genre_over_real_items():
  genres = np.array([[[1, 0], [1, 1], [0, 1], [1, 1]]], np.float32)  # [1, N=4, G=2]
  stars = np.array([[4, 2, 2, 0]])  # 5, 3, 3 stars; the 4th item is padding
  mask = np.array([[1, 1, 1, 0]], np.float32)
  hist = stats_probe.rating_histograms(genres, stars, mask)
  assert hist.shape == (1, 2, 5)
  np.testing.assert_array_equal(hist[0, 0], [0, 0, 1, 0, 1])
  np.testing.assert_array_equal(hist[0, 1], [0, 0, 2, 0, 0])


@pytest.fixture()
def clean_config():
  from persoma.seqio_tasks import config
  yield config
  config.reset_config()


@pytest.mark.parametrize("extra", [["--readout", "flat"],
                                   ["--inputs", "embeddings", "--aux_weight", "1"]])
def test_probe_runs_on_synthetic_data_beside_the_rule_baseline(clean_config, capsys, extra):
  assert stats_probe.main(["--dataset", "synthetic", "--encoder", "hashing", "--history", "10",
                           "--steps", "20", "--eval_every", "10", "--batch", "8",
                           "--hidden", "16", "--resample_labels", "history"] + extra) == 0
  out = capsys.readouterr().out.strip().splitlines()
  summary = json.loads(out[-1])
  from persoma import baselines
  from persoma.seqio_tasks import tasks
  want = baselines.evaluate_baseline("rule", tasks.load_data("synthetic"), split="test",
                                     history_size=10)
  assert summary["rule"]["f1"] == pytest.approx(want["f1"])
  assert summary["best_step"] in (10, 20) and 0.1 <= summary["threshold"] <= 0.5
  assert 0.0 <= summary["stats"]["f1"] <= 1.0 and 0.0 <= summary["stats_tuned"]["f1"] <= 1.0
  assert sum("validation F1" in line for line in out) == 2


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
  assert stats_probe.main(["--data_dir", str(tmp_path / "nowhere")]) == 2
  assert "nowhere not found" in capsys.readouterr().err
  assert stats_probe.main(["--dataset", "synthetic", "--readout", "deep"]) == 2
  assert "--readout='deep'" in capsys.readouterr().err
  assert stats_probe.main(["--dataset", "synthetic", "--steps", "0"]) == 2
  assert "--steps and --batch must be >= 1" in capsys.readouterr().err
