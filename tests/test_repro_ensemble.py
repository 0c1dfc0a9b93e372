"""benchmarks/seed_ensemble.py: the vote over several runs' greedy answers, its cut tuned on
validation, and the checks on the members' files. Synthetic inference files, no decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path  # noqa: F401
import seed_ensemble
from persoma.train import main_eval, marginal_eval

C = 38


def _consistent(y: np.ndarray) -> np.ndarray:
  """No genre both liked and disliked (an answer naming both keeps only the liked one)."""
  y = y.copy()
  y[:, C // 2:] *= 1 - y[:, :C // 2]
  return y


def _truth(rng: np.random.Generator, n: int) -> np.ndarray:
  y = (rng.random((n, C)) < 0.15).astype(int)
  y[:, 0] = 1  # every user names one class, so no class has zero support everywhere
  return _consistent(y)


def _noisy(y: np.ndarray, rng: np.random.Generator, flip: float) -> np.ndarray:
  return _consistent(np.where(rng.random(y.shape) < flip, 1 - y, y))


def _member(tmp_path, name: str, y: np.ndarray, pred: np.ndarray, ids=None):
  path = tmp_path / f"{name}.jsonl"
  ids = list(range(len(y))) if ids is None else ids
  path.write_text("".join(json.dumps({"user_id": i, "target": t, "prediction": p}) + "\n"
                          for i, t, p in zip(ids, marginal_eval.texts_of(y),
                                             marginal_eval.texts_of(pred))))
  return (path, *main_eval.read_inferences(str(path)))


def test_vote_shares_is_the_fraction_of_members_naming_each_class():
  a = np.array([[1, 0, 1]])
  b = np.array([[1, 0, 0]])
  c = np.array([[0, 0, 1]])
  np.testing.assert_allclose(seed_ensemble.vote_shares([a, b, c]), [[2 / 3, 0, 2 / 3]])
  with pytest.raises(ValueError, match="no members"):
    seed_ensemble.vote_shares([])


def test_majority_vote_of_independent_noisy_members_beats_each_member(tmp_path):
  rng = np.random.default_rng(0)
  y_val, y_test = _truth(rng, 200), _truth(rng, 200)
  val = [_member(tmp_path, f"v{k}", y_val, _noisy(y_val, rng, 0.1)) for k in range(3)]
  preds = [_noisy(y_test, rng, 0.1) for _ in range(3)]
  test = [_member(tmp_path, f"t{k}", y_test, p) for k, p in enumerate(preds)]
  res = seed_ensemble.ensemble(val, test)
  assert res["threshold"] == pytest.approx(0.5, abs=0.17)  # "two of three" on the grid
  assert res["f1"] == pytest.approx(res["majority"]["f1"])
  assert res["f1"] > max(m["f1"] for m in res["members"]) + 0.02
  for own, p in zip(res["members"], preds):  # each member scored alone, read back from its file
    assert own["f1"] == pytest.approx(marginal_eval.score_indicators(p, y_test)["f1"])


def test_members_of_other_users_or_targets_are_refused_naming_both_files(tmp_path):
  rng = np.random.default_rng(1)
  y = _truth(rng, 20)
  a = _member(tmp_path, "a", y, y)
  b = _member(tmp_path, "b", y, y, ids=list(range(1, 21)))
  with pytest.raises(ValueError, match=r"b\.jsonl and .*a\.jsonl hold different users"):
    seed_ensemble.ensemble([a, b], [a, a])
  y2 = y.copy()
  y2[0, 1] = 1 - y2[0, 1]
  c = _member(tmp_path, "c", y2, y2)
  with pytest.raises(ValueError, match="different users or targets"):
    seed_ensemble.ensemble([a, a], [a, c])


def _work_dir(tmp_path, rng, runs: int) -> tuple:
  y = {"validation": _truth(rng, 60), "test": _truth(rng, 50)}
  for r in range(runs):
    best = tmp_path / "work" / "runs" / f"run{r}" / "model" / "best"
    (best / "700").mkdir(parents=True)
    for split, ys in y.items():
      (best / f"inferences_{split}_step700.jsonl").write_text("".join(
          json.dumps({"user_id": i, "target": t, "prediction": p}) + "\n" for i, (t, p) in
          enumerate(zip(marginal_eval.texts_of(ys),
                        marginal_eval.texts_of(_noisy(ys, rng, 0.1))))))
  return tmp_path / "work", y


def test_main_writes_the_row_and_replaces_a_row_of_the_same_name(tmp_path, capsys):
  work, _ = _work_dir(tmp_path, np.random.default_rng(2), 3)
  out = tmp_path / "ens.json"
  out.write_text(json.dumps([{"name": "other"}, {"name": "e"}]))
  argv = ["--work_dir", str(work), "--name", "e", "--out", str(out),
          "--run", "run0", "--run", "run1", "--run", "run2"]
  assert seed_ensemble.main(argv) == 0
  rows = json.loads(out.read_text())
  assert [r["name"] for r in rows] == ["other", "e"]
  row = rows[1]
  assert row["steps"] == [700, 700, 700] and row["users"] == {"validation": 60, "test": 50}
  assert len(row["members"]) == 3 and 0 < row["f1"] <= 1
  assert "vote, cut" in capsys.readouterr().out


def test_main_refuses_bad_arguments_before_writing(tmp_path):
  work, _ = _work_dir(tmp_path, np.random.default_rng(3), 2)
  out = tmp_path / "ens.json"
  with pytest.raises(SystemExit, match="two or more distinct"):
    seed_ensemble.main(["--work_dir", str(work), "--name", "e", "--out", str(out),
                        "--run", "run0", "--run", "run0"])
  with pytest.raises(SystemExit, match=r"nope/model/best does not exist"):
    seed_ensemble.main(["--work_dir", str(work), "--name", "e", "--out", str(out),
                        "--run", "run0", "--run", "nope"])
  out.write_text("{not json")
  with pytest.raises(SystemExit, match="not overwriting"):
    seed_ensemble.main(["--work_dir", str(work), "--name", "e", "--out", str(out),
                        "--run", "run0", "--run", "run1"])
  assert out.read_text() == "{not json"
