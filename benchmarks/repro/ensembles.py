"""Group 11 (a persoma addition): several finished train runs read as one per user.

An `ensemble` run of the plan (`plan.ENSEMBLES`) names its members, train runs of the other
groups. Once all are done, `run_ensemble` reads their best checkpoints' greedy decodes of the
validation and the test users (decoding them first where the files are missing) with
`benchmarks/seed_ensemble.py`: a majority vote per class, a vote at a cut tuned on the
validation users, and, for rationale runs, the consensus rationale (per user, the genres at
least half the members write, each at the median of their written means, read by the rule).
The validation users pick one of these readouts; its test figures are the run's F1. The
ensemble's fingerprint covers its members' (plan: their fingerprints are its base), so a
retrained member makes it stale. `ensembles_section` renders the page's table; pure apart from
`run_ensemble`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from repro import execute
from repro import plan as plan_lib
from repro import state as state_lib
from repro.marginals_table import fmt

# the readouts of a row, in the order that breaks a tie of validation F1 (the ones without a
# fitted cut first)
READOUTS = ("consensus", "majority", "tuned")
READOUT_NAMES = {"consensus": "consensus rationale", "majority": "majority vote",
                 "tuned": "vote at the tuned cut"}
KEYS = execute.MARGINAL_KEYS  # f1, precision, recall, f1_liked, f1_disliked (seed_ensemble's)


def readouts_of(res: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """`seed_ensemble.ensemble`'s output as readout name -> its test KEYS and validation_f1
  (the tuned vote also its `threshold`), with its bootstrap entries where it has them (`f1_ci`,
  `gain`, `gain_ci`, `gain_above_0`); `consensus` only for rationale runs."""
  out = {"majority": dict(res["majority"]),
         "tuned": {**{k: res[k] for k in KEYS}, "validation_f1": res["validation_f1"],
                   "threshold": res["threshold"]}}
  if "consensus" in res:
    out["consensus"] = dict(res["consensus"])
  for name, boot in (res.get("bootstrap") or {}).items():
    if name in out:
      out[name].update(boot)
  return out


def member_scores(res: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Each member's own test scores, with its F1's bootstrap `f1_ci` where there is one."""
  cis = (res.get("bootstrap") or {}).get("members") or [None] * len(res["members"])
  return [dict(s, **({"f1_ci": ci} if ci else {})) for s, ci in zip(res["members"], cis)]


def pick(readouts: Mapping[str, Mapping[str, Any]]) -> str:
  """The readout of the highest validation F1 (ties: the earlier in READOUTS)."""
  have = [r for r in READOUTS if r in readouts]
  return max(have, key=lambda r: (readouts[r]["validation_f1"], -have.index(r)))


def run_ensemble(run: plan_lib.Run, store: state_lib.Store, fingerprint: str
                 ) -> dict[str, Any]:
  """The result of ensemble `run` from its members' best checkpoints in `store`.

  Raises RuntimeError naming a member whose best checkpoint is not in the work dir, or whose
  files disagree (other users or labels, another rule; seed_ensemble's message)."""
  t0 = time.time()
  try:
    return _run(run, store, fingerprint, t0)
  except Exception as e:
    store.record_attempt(run.run_id, fingerprint, time.time() - t0, error=str(e))
    raise


def _run(run: plan_lib.Run, store: state_lib.Store, fingerprint: str, t0: float
         ) -> dict[str, Any]:
  # benchmarks/ is on sys.path (reproduce.py, tests/repro_support.py); imported here, as
  # persoma-eval's reader loads JAX, which the page and --list do not need
  import seed_ensemble  # pylint: disable=g-import-not-at-top
  models = []
  for m in run.members:
    model = store.model_dir(m)
    if not (model / "best").is_dir():
      raise RuntimeError(
          f"member {m} has no best checkpoint under {model}/best (its figures may be in the "
          "ledger, but the ensemble reads its decodes): copy its run dir into "
          f"{store.root / 'runs'} from the work dir that trained it, or retrain it in a side "
          f"work dir (--work_dir DIR --ledger_dir none --only {m}) and copy that")
    models.append(model)
  readout = dict(run.identity).get("readout", "stated")
  try:
    users, res = seed_ensemble.read_members(models, readout, seed_ensemble.RESAMPLES)
  except SystemExit as e:  # the script's errors; here they fail this run, not the program
    raise RuntimeError(str(e).removeprefix("error: ")) from None
  readouts = readouts_of(res)
  chosen = pick(readouts)
  prog = store.record_attempt(run.run_id, fingerprint, time.time() - t0)
  return {
      "run_id": run.run_id, "fingerprint": fingerprint, "kind": "ensemble",
      "method": run.method, "label": run.label, "history_size": run.history_size,
      "sampler": run.sampler, "fmt": run.fmt, "mode": "",
      "resample_labels": run.resample_labels, "members": list(run.members),
      "readout": readout, "steps": [seed_ensemble.best_step(m) for m in models],
      "users": users["test"], "validation_users": users["validation"],
      "member_scores": member_scores(res), "readouts": readouts, "pick": chosen,
      "resamples": seed_ensemble.RESAMPLES,
      **{k: readouts[chosen][k] for k in KEYS},
      "validation_f1": readouts[chosen]["validation_f1"],
      "wall_secs": prog["wall_secs"], "attempts": prog["attempts"],
      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _cell(r: Mapping[str, Any] | None) -> str:
  """'test F1 (validation F1)' of one readout."""
  return "–" if r is None else f"{fmt(r['f1'])} ({fmt(r['validation_f1'])})"


def members_mean(r: Mapping[str, Any]) -> float:
  """The mean of the members' own test F1 (each read the way the ensemble reads it)."""
  return sum(s["f1"] for s in r["member_scores"]) / len(r["member_scores"])


def ensembles_at(results: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
  """The ensemble results at history size `n`, lowest (picked) test F1 first."""
  return sorted((r for r in results if r["kind"] == "ensemble" and r["history_size"] == n),
                key=lambda r: r["f1"])


def ensembles_section(results: Sequence[Mapping[str, Any]]) -> list[str]:
  """Group 11's section: one row per ensemble, its members' own F1 and each readout's."""
  rows = [r for r in results if r["kind"] == "ensemble"]
  if not rows:
    return []
  resamples = " or ".join(sorted({f"{r.get('resamples') or 0:,}" for r in rows}))
  L = [f"## {plan_lib.GROUPS['ensembles']}", "",
       "Each row reads finished runs of the tables above as one per user, once they are all "
       "done (`repro/ensembles.py`, `benchmarks/seed_ensemble.py`'s readouts): each member's "
       "greedy labels (for rationale runs read from the rationale it writes) vote per "
       "class, at a majority or at a cut tuned on the validation users; and the consensus "
       "rationale, per user the genres at least half the members write, each at the median "
       "of their written means, read by the rule. Picks: the readout of the best validation "
       "F1, whose test figures are the row's F1 / precision / recall. Cells: test F1 "
       "(validation F1). In brackets after the members' and the picked F1 and the gain "
       f"over the members' mean: 95% intervals over {resamples} redraws of the test users "
       "with replacement (`persoma.metrics.bootstrap`; the gain on the same redraws, with "
       "the share of redraws where it is positive). They measure the users drawn, not the "
       "seeds. An ensemble of M runs costs M trainings and M decodes per user.", "",
       "| Ensemble | Members (own test F1) | Members' mean | Majority vote | Vote at the "
       "tuned cut | Consensus rationale | Picks | F1 | Gain over the members' mean | "
       "Precision | Recall |",
       "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    members = "<br>".join(f"`{m}` {fmt(s['f1'])}{_ci(s.get('f1_ci'))}"
                          for m, s in zip(r["members"], r["member_scores"]))
    ro = r["readouts"]
    tuned = ro["tuned"]
    L.append(f"| `{r['run_id']}` | {members} | {fmt(members_mean(r))} | "
             f"{_cell(ro['majority'])} | {_cell(tuned)}, cut {tuned['threshold']:.2f} | "
             f"{_cell(ro.get('consensus'))} | {READOUT_NAMES[r['pick']]} | "
             f"**{fmt(r['f1'])}**{_ci(ro[r['pick']].get('f1_ci'))} | {gain_text(r)} | "
             f"{fmt(r['precision'])} | {fmt(r['recall'])} |")
  return L + [""]


def _ci(ci: Sequence[float] | None, signed: bool = False) -> str:
  """' [lo, hi]' of a bootstrap interval (3 decimals); '' without one."""
  return "" if not ci else (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed
                            else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def gain_text(r: Mapping[str, Any]) -> str:
  """'+0.0149 [+0.003, +0.027], 99% of redraws' of the picked readout's gain over the
  members' mean (without a bootstrap: the plain difference)."""
  ro = r["readouts"][r["pick"]]
  if "gain" not in ro:
    return f"{r['f1'] - members_mean(r):+.4f}"
  return (f"{ro['gain']:+.4f}{_ci(ro['gain_ci'], signed=True)}, "
          f"{100 * ro['gain_above_0']:.0f}% of redraws")
