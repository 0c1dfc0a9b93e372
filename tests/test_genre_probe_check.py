"""benchmarks/genre_probe_check.py: the probe's agreement figures, on synthetic outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path  # noqa: F401
import genre_probe_check as check_lib
from persoma.data.labels import LabelConfig
from persoma.models import genre_probe


def _targets(seed=0, users=40):
  rng = np.random.default_rng(seed)
  genres = (rng.random((users, 20, 19)) < 0.2).astype(np.float32)
  stars = rng.integers(0, 5, (users, 20)).astype(np.int32)
  mask = np.ones((users, 20), np.int32)
  return {k: np.asarray(v) for k, v in genre_probe.probe_targets(
      genres, stars, mask, LabelConfig(min_genre_count=2)).items()}


def _outputs(t):
  """Probe outputs that give exactly the targets."""
  out = np.zeros(t["label"].shape + (5,), np.float32)
  out[..., genre_probe.QUALIFY] = np.where(t["qualify"], 3.0, -3.0)
  out[..., genre_probe.MEAN] = t["mean"]
  out[..., 2:5] = 5.0 * np.eye(3)[t["label"]]
  return out


def test_exact_outputs_agree_everywhere_and_one_wrong_genre_costs_one_user():
  t = _targets()
  assert (t["label"] == genre_probe.LIKED).any() and (t["label"] == genre_probe.DISLIKED).any()
  res = check_lib.agreement(_outputs(t), t)
  assert res == {"qualify_accuracy": 1.0, "class_accuracy": 1.0, "liked_set_exact": 1.0,
                 "disliked_set_exact": 1.0, "both_sets_exact": 1.0, "mean_abs_error": 0.0}
  u, g = np.argwhere(t["label"] == genre_probe.LIKED)[0]
  out = _outputs(t)
  out[u, g, 2:5] = 5.0 * np.eye(3)[genre_probe.DISLIKED]   # liked -> disliked on one genre
  out[..., genre_probe.MEAN] += 0.5
  res = check_lib.agreement(out, t)
  users = t["label"].shape[0]
  assert res["class_accuracy"] == pytest.approx(1 - 1 / t["label"].size)
  assert res["liked_set_exact"] == res["disliked_set_exact"] == pytest.approx(1 - 1 / users)
  assert res["both_sets_exact"] == pytest.approx(1 - 1 / users)
  assert res["mean_abs_error"] == pytest.approx(0.5) and res["qualify_accuracy"] == 1.0


def test_a_dir_without_config_gin_is_a_clear_error(tmp_path):
  with pytest.raises(SystemExit, match=r"config.gin does not exist"):
    check_lib.check(str(tmp_path), "validation")


def test_the_probes_own_answers_are_scored_against_the_target_texts():
  t = _targets(1, users=6)
  from persoma.data import genres as genres_lib
  names = np.asarray(genres_lib.GENRES)

  def text(row):
    liked = ", ".join(names[row == genre_probe.LIKED]) or "None"
    disliked = ", ".join(names[row == genre_probe.DISLIKED]) or "None"
    return f"Shown: Action 4.00. Liked Genres: {liked}. Not Liked Genres: {disliked}"

  targets = [text(row) for row in t["label"]]
  exact = check_lib.answer_scores(_outputs(t), targets)
  assert exact == {"answer_f1": 1.0, "answer_precision": 1.0, "answer_recall": 1.0}
  none = t["label"] * 0
  empty = check_lib.answer_scores(_outputs(dict(t, label=none)), targets)
  assert empty["answer_recall"] == 0.0


def test_json_keeps_other_entries_and_a_broken_file_is_refused_untouched(tmp_path, monkeypatch,
                                                                        capsys):
  t = _targets(2, users=4)
  res = {"split": "test", "users": 4, "step": 7, "checkpoint": "/x/best/7",
         **check_lib.agreement(_outputs(t), t),
         "answer_f1": 0.5, "answer_precision": 0.5, "answer_recall": 0.5}
  monkeypatch.setattr(check_lib, "check", lambda md, split: dict(res, split=split))
  path = tmp_path / "probe.json"
  path.write_text('{"other/test": {"answer_f1": 0.1}}')
  assert check_lib.main([str(tmp_path / "run" / "model"), "--split", "test",
                         "--json", str(path)]) == 0
  assert "run test step 7 (4 users): qualify 1.000" in capsys.readouterr().out
  data = json.loads(path.read_text())
  assert data["other/test"] == {"answer_f1": 0.1}
  assert data["run/test"]["step"] == 7 and "checkpoint" not in data["run/test"]
  path.write_text("{broken")
  with pytest.raises(SystemExit, match="probe.json is not valid JSON"):
    check_lib.main([str(tmp_path / "run"), "--json", str(path)])
  assert path.read_text() == "{broken"
