"""Group 11 of the reproduction program (benchmarks/repro/ensembles.py): ensembles of finished
train runs as planned runs that wait for their members, their result from the members' decodes,
and their table and target note on the page. Synthetic files and a fake executor; no decoding."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from repro_support import make_ensemble_result, fake_results  # first: benchmarks/ on sys.path
import reproduce
from repro import ensembles, report, targets
from repro import plan as plan_lib
from repro import state as state_lib
from persoma.train import marginal_eval

C = 38


def test_ensembles_are_planned_after_their_members_and_pull_them_in(plan):
  by_id = {r.run_id: r for r in plan}
  order = [r.run_id for r in plan]
  ens = [r for r in plan if r.kind == "ensemble"]
  assert {r.run_id for r in ens} == {
      plan_lib.ensemble_id(plan_lib.CONTINUED_METHOD, plan_lib.ENSEMBLE_N, t)
      for t in plan_lib.ENSEMBLES}
  for r in ens:
    assert len(r.members) == len(plan_lib.ENSEMBLES[r.run_id.rsplit("-", 1)[1]]) >= 3
    assert all(by_id[m].kind == "train" and by_id[m].history_size == r.history_size
               and by_id[m].resample_labels == "shown" for m in r.members)
    assert max(order.index(m) for m in r.members) < order.index(r.run_id)
    assert dict(r.identity) == {"members": r.members, "readout": "rationale"}
    assert set(plan_lib.select(plan, [r.run_id])) == {r} | {by_id[m] for m in r.members}
  seeds = by_id[plan_lib.ensemble_id(plan_lib.CONTINUED_METHOD, 50, "seeds_0_1_2")]
  assert [by_id[m].bindings for m in seeds.members][0] != [by_id[m].bindings
                                                          for m in seeds.members][1]
  assert {dict(by_id[m].bindings).get("SEED") for m in seeds.members} == {None, 1, 2}


def test_an_ensemble_waits_for_its_members_and_runs_after_them(program_env, capsys):
  base, calls, fail, work, tmp = program_env
  ens = plan_lib.ensemble_id(plan_lib.CONTINUED_METHOD, 50, "seeds_0_1_2")
  only = ["--only", ens]
  member = "persoma_mlp_rationale_tuned_probe_whole-h50-recency-uem-full-relabel_shown-" \
           "steps_x3-seed1"
  fail.add(member)
  assert reproduce.main(base + only) == 1
  out = capsys.readouterr().out
  assert f"{ens}: blocked: {member} has no result" in out
  assert ens not in calls and member in calls
  calls.clear()
  fail.clear()
  assert reproduce.main(base + only) == 0
  assert calls == [member, ens]  # the finished members are skipped; the ensemble comes last
  page = (tmp / "docs" / "RESULTS.md").read_text()
  assert f"## {plan_lib.GROUPS['ensembles']}" in page
  rows = [ln for ln in page.splitlines() if ln.startswith(f"| `{ens}`")]
  assert len(rows) == 2  # its group's table and the Runs table
  assert "majority vote" in rows[0] and member in rows[0] and "reads 3 runs" in rows[1]
  result = json.loads((work / "results" / f"{ens}.json").read_text())
  members = reproduce.Program(reproduce.parse_args(base)).by_id[ens].members
  assert result["members"] == list(members) and member in members


def test_an_ensembles_fingerprint_follows_its_members(program_env, monkeypatch):
  base, *_ = program_env
  before = reproduce.Program(reproduce.parse_args(base)).fp
  counted = "persoma_mlp_rationale_tuned_probe_whole_counts"
  inner = plan_lib.Run.fingerprint

  def changed(self, base_fingerprint=None):  # as if the counted run's gin file changed
    fp = inner(self, base_fingerprint)
    return fp[::-1] if self.method == counted and self.kind == "train" else fp

  monkeypatch.setattr(plan_lib.Run, "fingerprint", changed)
  after = reproduce.Program(reproduce.parse_args(base)).fp
  tags = {t: plan_lib.ensemble_id(plan_lib.CONTINUED_METHOD, 50, t) for t in plan_lib.ENSEMBLES}
  assert after[tags["seeds_0_1_2"]] == before[tags["seeds_0_1_2"]]
  assert after[tags["seeds_0_2_counted_2"]] != before[tags["seeds_0_2_counted_2"]]
  assert after[tags["seeds_0_1_2_counted_2"]] != before[tags["seeds_0_1_2_counted_2"]]


def _store_with_members(tmp_path, flips):
  """A work dir whose runs m0.. hold greedy decodes of 40 validation and 30 test users, each
  member flipping a fraction `flips[k]` of the 38 labels at random."""
  rng = np.random.default_rng(5)
  y = {s: (rng.random((n, C)) < 0.15).astype(int) for s, n in (("validation", 40), ("test", 30))}
  for ys in y.values():
    ys[:, 0] = 1
    ys[:, C // 2:] *= 1 - ys[:, :C // 2]
  store = state_lib.Store(tmp_path / "work")
  for k, flip in enumerate(flips):
    best = store.model_dir(f"m{k}") / "best"
    (best / "700").mkdir(parents=True)
    for split, ys in y.items():
      pred = np.where(rng.random(ys.shape) < flip, 1 - ys, ys)
      pred[:, C // 2:] *= 1 - pred[:, :C // 2]
      (best / f"inferences_{split}_step700.jsonl").write_text("".join(
          json.dumps({"user_id": i, "target": t, "prediction": p}) + "\n" for i, (t, p) in
          enumerate(zip(marginal_eval.texts_of(ys), marginal_eval.texts_of(pred)))))
  run = plan_lib.Run("ensemble-x", "ensemble", "persoma_mlp", ("ensembles",), 50,
                     resample_labels="shown", members=tuple(f"m{k}" for k in range(len(flips))),
                     identity=(("members", ()), ("readout", "stated")))
  return store, run


def test_run_ensemble_scores_the_readout_validation_picks(tmp_path):
  store, run = _store_with_members(tmp_path, [0.08, 0.1, 0.12])
  r = ensembles.run_ensemble(run, store, "fp1")
  assert r["kind"] == "ensemble" and r["members"] == ["m0", "m1", "m2"]
  assert r["steps"] == [700] * 3 and (r["users"], r["validation_users"]) == (30, 40)
  assert set(r["readouts"]) == {"majority", "tuned"}  # no consensus without rationales
  assert r["pick"] == max(r["readouts"], key=lambda k: r["readouts"][k]["validation_f1"])
  picked = r["readouts"][r["pick"]]
  assert (r["f1"], r["precision"], r["validation_f1"]) == (
      picked["f1"], picked["precision"], picked["validation_f1"])
  assert r["readouts"]["majority"]["f1"] > ensembles.members_mean(r)  # independent errors
  for ro in r["readouts"].values():  # 95% intervals over redraws of the 30 test users
    assert ro["f1_ci"][0] < ro["f1"] < ro["f1_ci"][1]
    assert ro["gain_ci"][0] < ro["gain"] < ro["gain_ci"][1]
  assert r["resamples"] == 2000 and "[" in ensembles.gain_text(r)
  for own in r["member_scores"]:
    assert own["f1_ci"][0] < own["f1"] < own["f1_ci"][1]
  assert state_lib.result_problem(r, "ensemble-x", "fp1") is None
  assert store.progress("ensemble-x")["attempts"] == 1


def test_pick_breaks_ties_toward_the_readouts_without_a_fitted_cut():
  ro = {"tuned": {"validation_f1": 0.5}, "majority": {"validation_f1": 0.5},
        "consensus": {"validation_f1": 0.4}}
  assert ensembles.pick(ro) == "majority"
  assert ensembles.pick(dict(ro, consensus={"validation_f1": 0.5})) == "consensus"
  assert ensembles.pick(dict(ro, tuned={"validation_f1": 0.51})) == "tuned"


def test_a_member_without_its_checkpoint_fails_the_ensemble_naming_it(tmp_path):
  store, run = _store_with_members(tmp_path, [0.1, 0.1])
  shutil.rmtree(store.model_dir("m1") / "best")  # pruned, or trained in another work dir
  with pytest.raises(RuntimeError, match=r"member m1 has no best checkpoint under .*m1/model/"
                     r"best .*--only m1"):
    ensembles.run_ensemble(run, store, "fp1")
  assert "member m1" in store.progress("ensemble-x")["last_error"]


def test_members_of_other_users_fail_the_ensemble_not_the_program(tmp_path):
  store, run = _store_with_members(tmp_path, [0.1, 0.1])
  path = store.model_dir("m1") / "best" / "inferences_test_step700.jsonl"
  path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))  # one user fewer
  with pytest.raises((RuntimeError, ValueError), match="inferences_test_step700.jsonl"):
    ensembles.run_ensemble(run, store, "fp1")


def test_the_page_lists_ensembles_and_the_target_names_the_best(plan):
  ens = [r for r in plan if r.kind == "ensemble"]
  results = fake_results() + [dict(make_ensemble_result(r, "fp", 0.5 + 0.01 * i),
                                   groups=["ensembles"]) for i, r in enumerate(ens)]
  lines = ensembles.ensembles_section(results)
  assert sum(ln.startswith("| `ensemble-") for ln in lines) == len(ens)
  best = ens[-1]
  note = [t for t in targets.check_targets(results) if "N=50 reaches" in t][0]
  assert (f"best ensemble of {len(best.members)} runs (group 11, the readout validation "
          f"picks): F1 {0.5 + 0.01 * (len(ens) - 1):.4f}, its members' mean "
          f"{0.48 + 0.01 * (len(ens) - 1):.4f}, `{best.run_id}`; lowest ensemble: F1 "
          f"0.5000, `{ens[0].run_id}`") in note
  page = report.render(results, meta={}, missing=[], plot_file=None)
  assert f"| `{best.run_id}` | none (reads {len(best.members)} runs) |" in page
  assert ensembles.ensembles_section(fake_results()) == []
