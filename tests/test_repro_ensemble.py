"""benchmarks/seed_ensemble.py: the vote over several runs' greedy answers, its cut tuned on
validation, and the checks on the members' files. Synthetic inference files, no decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro_support import REPO  # first: puts benchmarks/ on sys.path  # noqa: F401
import seed_ensemble
from persoma.data import formats
from persoma.train import main_eval, marginal_eval

C = 38
SPLITS = seed_ensemble.SPLITS


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
  with pytest.raises(ValueError, match="different users or target labels"):
    seed_ensemble.ensemble([a, a], [a, c])
  # the same labels behind another target text (a rationale before them) are the same targets
  d = (tmp_path / "d.jsonl", a[1], ["Shown: Drama 4.10. " + t for t in a[2]], a[3])
  assert seed_ensemble.ensemble([a, d], [d, a])["f1"] == pytest.approx(1.0)


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
  printed = capsys.readouterr().out
  assert "vote, cut" in printed and "95% intervals over 2000 redraws" in printed
  boot = row["bootstrap"]  # the default: 2000 redraws of the test users per readout
  assert boot["resamples"] == 2000 and set(boot) == {"resamples", "tuned", "majority", "members"}
  assert boot["tuned"]["f1_ci"][0] < row["f1"] < boot["tuned"]["f1_ci"][1]
  assert boot["majority"]["gain"] == pytest.approx(
      row["majority"]["f1"] - np.mean([m["f1"] for m in row["members"]]))
  assert seed_ensemble.main(argv + ["--resamples", "0"]) == 0
  assert "bootstrap" not in json.loads(out.read_text())[-1]


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


def _text(means: dict, liked, disliked) -> str:
  head = formats.format_rationale(list(means), list(means.values()))
  return f"{head} {formats.format_target(list(liked), list(disliked))}"


def _rationale_members(tmp_path, configs: list) -> list:
  """Three members over 8 users per split. The truth is the default rule on Drama 4.0 and
  Horror 2.5; member k writes one genre's mean on the wrong side of its threshold for users
  k, k+3 (never two members on one user), and every member states `Comedy` as its labels."""
  truth = {"Drama": 4.0, "Horror": 2.5}
  target = formats.format_target(["Drama"], ["Horror"])
  dirs = []
  for k, config in enumerate(configs):
    model = tmp_path / "other" / f"m{k}" / "model"
    (model / "best" / "900").mkdir(parents=True)
    if config:
      (model / "config.gin").write_text(config)
    for split in SPLITS:
      rows = []
      for u in range(8):
        means = dict(truth)
        if u in (k, k + 3):
          means["Drama" if u % 2 else "Horror"] = 3.2  # Drama unliked or Horror undisliked
        rows.append(json.dumps({"user_id": u, "target": target,
                                "prediction": _text(means, ["Comedy"], [])}))
      (model / "best" / f"inferences_{split}_step900.jsonl").write_text("\n".join(rows) + "\n")
    dirs.append(str(model))
  return dirs


def test_rationale_readout_votes_on_what_members_read_and_scores_their_consensus(tmp_path):
  models = _rationale_members(tmp_path, [None, None, None])
  out = tmp_path / "ens.json"
  base = ["--work_dir", str(tmp_path / "work"), "--out", str(out)]
  for m in models:  # model dir paths, not run ids in --work_dir
    base += ["--run", m]
  assert seed_ensemble.main(base + ["--name", "read", "--readout", "rationale"]) == 0
  assert seed_ensemble.main(base + ["--name", "stated"]) == 0
  read, stated = json.loads(out.read_text())
  assert read["readout"] == "rationale" and stated["readout"] == "stated"
  assert stated["f1"] == 0.0 and "consensus" not in stated  # every member states Comedy
  for own in read["members"]:  # each member misreads one genre of 2 of the 8 test users
    assert 0.8 < own["f1"] < 1.0
  assert read["majority"]["f1"] == pytest.approx(1.0)
  assert read["majority"]["validation_f1"] == pytest.approx(1.0)
  assert stated["majority"]["validation_f1"] == 0.0
  assert read["consensus"]["f1"] == pytest.approx(1.0)
  assert read["consensus"]["validation_f1"] == pytest.approx(1.0)
  assert read["runs"][0].endswith("other/m0/model")


def test_rationale_members_must_share_one_rule(tmp_path):
  config = ("from __gin__ import dynamic_registration\n"
            "from persoma.data import labels\n"
            "from persoma.seqio_tasks import config as data_config\n\n"
            "data_config.PersomaDataConfig.target_rationale = True\n"
            "data_config.PersomaDataConfig.shown_label_config = @shown/labels.LabelConfig()\n"
            "shown/labels.LabelConfig.like_threshold = 3.65\n")
  models = _rationale_members(tmp_path, [config, config, None])
  out = tmp_path / "ens.json"
  argv = ["--work_dir", str(tmp_path), "--out", str(out), "--name", "e",
          "--readout", "rationale"]
  with pytest.raises(SystemExit, match=r"m2/model/best/inferences_test_step900.jsonl reads "
                     r"under .*the runs must share one rule"):
    seed_ensemble.main(argv + [x for m in models for x in ("--run", m)])
  assert not out.exists()
  # the two members of one rule are an ensemble
  assert seed_ensemble.main(argv + [x for m in models[:2] for x in ("--run", m)]) == 0
  assert json.loads(out.read_text())[0]["runs"][1].endswith("m1/model")
