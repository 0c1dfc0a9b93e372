"""Vote ensemble of several trained runs (seeds of one configuration) on their greedy answers.

  python benchmarks/seed_ensemble.py --work_dir ~/persoma_repro --name NAME \
      --run RUN_ID --run RUN_ID2 --run RUN_ID3 [--readout {stated,rationale}] \
      [--resamples 2000] [--out benchmarks/repro/seed_ensemble.json]

Each member's best checkpoint greedily decodes the validation and the test users
(`persoma-eval --split S --predictions`; its `inferences_<split>_step<step>.jsonl` beside the
checkpoint is reused when present). Each of the 38 liked/disliked classes gets a vote share, the
fraction of members whose answer names it; a class is predicted when its share reaches a cut
tuned on the validation users (`persoma.metrics.marginals.tune_threshold`: with 3 members the
cut means "any", "a majority" or "all" of them) and the test users are scored at that cut. The
members' own test scores, read back from their predictions, are printed beside the ensemble's;
an ensemble of M members costs M trainings.

With `--readout rationale` (runs trained with `PersomaDataConfig.target_rationale`) each
member's labels are read from the rationale it wrote (`persoma.metrics.readout`, under the rule
of the members' config.gin, which must be one rule) before the vote, and the row also scores
the consensus rationale (`RationaleReadout.consensus`: per user, the genres at least half of
the members write, each at the median of their written means, read by the rule once).

Each readout and each member also gets a 95% interval of its test F1 over `--resamples` redraws
of the test users with replacement, and each readout its gain over the members' mean F1 on the
same redraws (`persoma.metrics.bootstrap`): how much of a difference the 280 users drawn could
make, not the spread over seeds. `benchmarks/reproduce.py` runs this for its group-11 ensembles.

A member is a run id under --work_dir or the path of a model dir (another work dir, e.g. a
retrained seed). The members must have decoded the same users with the same target labels in
the same order (the same data seed and split; their target rationales may differ, e.g. with
and without counts); otherwise the error names the two files that differ. The figures,
metrics only, replace the row of the same --name in --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rationale_check  # noqa: E402  (the run's rules from its config.gin)
from persoma import atomic_io  # noqa: E402
from persoma.metrics import bootstrap, marginals, readout, verbalizer  # noqa: E402
from persoma.train import main_eval, marginal_eval  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("validation", "test")
KEYS = ("f1", "precision", "recall", "f1_liked", "f1_disliked")
READOUTS = ("stated", "rationale")
RESAMPLES = 2000  # bootstrap redraws of the test users (--resamples)


def vote_shares(members: Sequence[np.ndarray]) -> np.ndarray:
  """M member predictions `[U, C]` (0/1) -> `[U, C]` fraction of the members naming each class."""
  if not members:
    raise ValueError("no members to vote")
  stack = np.stack([np.asarray(m, dtype=np.float64) for m in members])
  if stack.ndim != 3:
    raise ValueError(f"member predictions must each be [U, C], got {stack.shape[1:]}")
  return stack.mean(axis=0)


def ensemble(val: Sequence[tuple[Path, list, list[str], list[str]]],
             test: Sequence[tuple[Path, list, list[str], list[str]]],
             reader: readout.RationaleReadout | None = None, resamples: int = 0) -> dict:
  """Tunes the vote cut on `val` and scores `test`; each element is one member's
  `(file, user ids, targets, predictions)`. Returns the ensemble's scores at the tuned cut
  (`threshold`, `validation_f1`, the test `KEYS`), at the majority cut (`majority`, with its
  `validation_f1`) and each member's own test scores (`members`). With `reader`, each member's
  labels are read from its rationale, and `consensus` scores the members' rationales read as
  one per user (test `KEYS` and `validation_f1`). With `resamples`, `bootstrap` holds, per
  readout (`tuned`, `majority`, `consensus`), its test F1's 95% interval over that many
  redraws of the test users and its gain over the members' mean F1 on the same redraws
  (`persoma.metrics.bootstrap.paired_gain`; seed 0, so reruns agree), and `members` each
  member's test F1 interval on the same redraws."""
  read = reader.indicators if reader is not None else (lambda p: verbalizer.parse_many(p)[0])
  ys, answers, texts = [], [], []
  for split in (val, test):
    ref_path, ref_ids, ref_targets, _ = split[0]
    ys.append(marginal_eval.truth(ref_targets, len(ref_targets)))
    for path, ids, targets, _ in split[1:]:  # the labels, not the texts: rationales may differ
      rationale_check.check_same_users(path, ids, marginal_eval.truth(targets, len(targets)),
                                       ref_path, ref_ids, ys[-1])
    answers.append([read(p) for _, _, _, p in split])  # per member [U, C]
    texts.append([list(per_user) for per_user in zip(*(p for _, _, _, p in split))])
  votes = [vote_shares(a) for a in answers]
  tau, curve = marginals.tune_threshold(votes[0], ys[0])
  majority = 0.5 + 1e-9 if len(val) % 2 == 0 else 0.5
  preds = {"tuned": marginals.threshold(votes[1], tau),  # test [U, C] per readout
           "majority": marginals.threshold(votes[1], majority)}
  out = {"threshold": tau, "validation_f1": curve[tau],
         **_scores(marginal_eval.score_indicators(preds["tuned"], ys[1])),
         "majority": {**_scores(marginal_eval.score_indicators(preds["majority"], ys[1])),
                      "validation_f1": float(marginal_eval.score(votes[0], ys[0],
                                                                 majority)["f1"])},
         "members": [_scores(marginal_eval.score_indicators(a, ys[1])) for a in answers[1]]}
  if reader is not None:
    val_pred, preds["consensus"] = (reader.consensus_indicators(t) for t in texts)
    out["consensus"] = {
        **_scores(marginal_eval.score_indicators(preds["consensus"], ys[1])),
        "validation_f1": float(marginal_eval.score_indicators(val_pred, ys[0])["f1"])}
  if resamples:
    weights = bootstrap.resample_weights(len(ys[1]), resamples)
    out["bootstrap"] = {"resamples": resamples, **{
        k: bootstrap.paired_gain(ys[1], pred, answers[1], weights) for k, pred in preds.items()},
        "members": [bootstrap.interval(bootstrap.weighted_f1(ys[1], a, weights))
                    for a in answers[1]]}
  return out


def _scores(s: dict) -> dict:
  return {k: float(s[k]) for k in KEYS}


def _prf(s: dict) -> str:
  return f"{s['f1']:.4f} ({s['precision']:.4f} / {s['recall']:.4f})"


def best_step(model: Path) -> int:
  """The step of the run's best checkpoint (`model/best/<step>`); errors name the folder."""
  steps = [int(p.name) for p in (model / "best").glob("*") if p.is_dir() and p.name.isdigit()]
  if len(steps) != 1:
    raise SystemExit(f"error: {model}/best holds {len(steps)} step checkpoints, expected 1")
  return steps[0]


def run_models(work_dir: str, runs: Sequence[str]) -> list[Path]:
  """The model dirs of `runs`: run ids in a reproduce.py work dir, or model dir paths (any
  with a `/`). One without a best checkpoint is an error naming it."""
  models = [Path(r).expanduser() if "/" in r else Path(work_dir).expanduser() / "runs" / r /
            "model" for r in runs]
  for m in models:
    if not (m / "best").is_dir():
      raise SystemExit(f"error: {m}/best does not exist (unknown run id or pruned checkpoint)")
  return models


def members_reader(files: Sequence[Path]) -> readout.RationaleReadout:
  """The rationale readout of the members whose inference `files` these are: the rule of
  their config.gin, which must be one (`rationale_check.shared_rules`)."""
  cfg, _, whole = rationale_check.shared_rules([str(f) for f in files])
  return readout.RationaleReadout(cfg, whole)


def member_inferences(model: Path, split: str) -> Path:
  """The member's `inferences_<split>_step<best>.jsonl`, decoding it first when missing."""
  path = model / "best" / f"inferences_{split}_step{best_step(model)}.jsonl"
  if not path.exists():
    print(f"  {model.parent.name}: greedy decoding of the {split} users ...", file=sys.stderr,
          flush=True)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "persoma.train.main_eval", f"--checkpoint={model}",
                    f"--split={split}", "--predictions", "--json"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    if not path.exists():
      raise SystemExit(f"error: persoma-eval wrote no {path}")
    print(f"  done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
  return path


def read_members(models: Sequence[Path], how: str, resamples: int
                 ) -> tuple[dict[str, int], dict]:
  """`ensemble` of the members whose model dirs these are (their greedy decodes of both
  splits, decoded first where missing), each read as `how` (one of READOUTS), with the users
  per split. Raises ValueError (members of other users or labels) or SystemExit (a failed
  decoding, members of different rules), naming the files."""
  per_split = {s: [(f, *main_eval.read_inferences(str(f)))
                   for f in (member_inferences(m, s) for m in models)] for s in SPLITS}
  reader = members_reader([f for f, *_ in per_split["test"]]) if how == "rationale" else None
  return ({s: len(per_split[s][0][1]) for s in SPLITS},
          ensemble(per_split["validation"], per_split["test"], reader, resamples))


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--work_dir", required=True, help="the reproduce.py work dir")
  p.add_argument("--run", action="append", required=True,
                 help="member run id, or a model dir path (repeatable)")
  p.add_argument("--readout", choices=READOUTS, default="stated",
                 help="vote on the labels each member states (default) or reads from its "
                 "rationale")
  p.add_argument("--name", required=True, help="the ensemble's row name in --out")
  p.add_argument("--resamples", type=int, default=RESAMPLES,
                 help="redraws of the test users for each readout's 95%% interval and its "
                 "gain over the members' mean (0: none)")
  p.add_argument("--out", default=str(REPO / "benchmarks" / "repro" / "seed_ensemble.json"))
  a = p.parse_args(argv)
  if len(a.run) < 2 or len(set(a.run)) != len(a.run):
    raise SystemExit(f"error: an ensemble needs two or more distinct --run, got {a.run}")
  try:
    rows = atomic_io.read_json_to_extend(a.out, list)
  except ValueError as e:
    raise SystemExit(f"error: --out {e}") from None
  models = run_models(a.work_dir, a.run)
  t0 = time.time()
  try:
    users, res = read_members(models, a.readout, a.resamples)
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  row = {"name": a.name, "runs": [rationale_check.file_key(r) if "/" in r else r
                                   for r in a.run],
         "readout": a.readout, "steps": [best_step(m) for m in models], "users": users, **res}
  rows = [r for r in rows if r.get("name") != a.name] + [row]
  atomic_io.write_text(a.out, json.dumps(rows, indent=1) + "\n")
  print("| member | best step | test F1 (P / R) |\n|---|---|---|")
  for run, step, s in zip(row["runs"], row["steps"], res["members"]):
    print(f"| `{run}` | {step} | {_prf(s)} |")
  print(f"| members' mean | | {np.mean([s['f1'] for s in res['members']]):.4f} |")
  print(f"| vote, majority (val F1 {res['majority']['validation_f1']:.4f}) | | "
        f"{_prf(res['majority'])} |")
  print(f"| vote, cut {res['threshold']:.2f} tuned on validation (val F1 "
        f"{res['validation_f1']:.4f}) | | {_prf(res)} |")
  if "consensus" in res:
    print(f"| consensus rationale (val F1 {res['consensus']['validation_f1']:.4f}) | | "
          f"{_prf(res['consensus'])} |")
  boot = res.get("bootstrap")
  if boot:
    print(f"95% intervals over {boot['resamples']} redraws of the test users: " + "; ".join(
        f"{k} F1 [{b['f1_ci'][0]:.4f}, {b['f1_ci'][1]:.4f}], gain over the members' mean "
        f"{b['gain']:+.4f} [{b['gain_ci'][0]:+.4f}, {b['gain_ci'][1]:+.4f}]"
        for k, b in boot.items() if isinstance(b, dict)))
  print(f"wrote {a.out} ({time.time() - t0:.0f} s)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
