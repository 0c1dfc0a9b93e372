"""Where a trained run's greedy answers lose to the tuned rule: whole shown histories or windows.

  python benchmarks/exact_history_probe.py --data_dir ../shared/movielens \
      --work_dir ~/persoma_repro --run RUN_ID [--run RUN_ID2] [--json FILE]

A user with fewer than N ratings has the whole history shown, so the test target (the label rule
on the whole history) is the label rule on the shown items, which the tuned rule
(`persoma.tuned_rule.predict`) then applies exactly; for the other users every method only
estimates it. Per run and split (validation, test) this prints the weighted F1 of the run's
greedy answers (`persoma-eval --predictions`, decoded first when missing, as
`benchmarks/seed_ensemble.py` does), of the tuned rule (the run's shown_label_config) and of the
label rule, on all users, on those whose whole history is shown and on the rest; how often the
run's labels equal the tuned rule's; and, for rationale targets, how often the run's
`Shown: ...` rationale names the same genres as the shown items' and the mean error of its
per-genre means. The history size, sampler and data seed come from the run's `config.gin`.
Figures (metrics only) go to --json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import embedding_probe  # noqa: E402  (data flags)
import rationale_check  # noqa: E402
import seed_ensemble  # noqa: E402

SPLITS = ("validation", "test")
MACRO_RE = re.compile(r"^([A-Z_]+) = (.+)$", re.M)


def run_macros(model: Path) -> dict[str, str]:
  """The `NAME = value` macro lines of a run's `config.gin` (values as written)."""
  path = model / "config.gin"
  if not path.exists():
    raise SystemExit(f"error: {path} does not exist (not a persoma-train model dir?)")
  return dict(MACRO_RE.findall(path.read_text()))


def group_scores(truth: np.ndarray, preds: dict[str, np.ndarray], exact: np.ndarray) -> dict:
  """`{name: {'all', 'whole_history', 'window'}}` weighted F1 of each `[U, C]` prediction on
  all users, on those whose whole history is shown (`exact [U]`) and on the rest (None for an
  empty group)."""
  from persoma.metrics import weighted  # pylint: disable=g-import-not-at-top
  groups = {"all": np.ones_like(exact), "whole_history": exact, "window": ~exact}
  return {name: {g: (float(weighted.weighted_prf(truth[m], p[m])["f1"]) if m.any() else None)
                 for g, m in groups.items()} for name, p in preds.items()}


def rationale_figures(path: Path, targets: list[str]) -> dict | None:
  """`rationale_check.check`'s share of users whose generated rationale names the target
  rationale's genres and mean error of the means both name; None without rationale targets."""
  from persoma.data import formats  # pylint: disable=g-import-not-at-top
  if any(formats.parse_rationale(t) is None for t in targets):
    return None
  figures = rationale_check.check(str(path))
  return {"same_genres": figures["genre_set_exact"],
          "mean_abs_error": figures["mean_abs_error"]}


def probe_run(data, model: Path, split: str) -> dict:
  from persoma import tuned_rule  # pylint: disable=g-import-not-at-top
  from persoma.data import LabelConfig, build_examples  # pylint: disable=g-import-not-at-top
  from persoma.metrics import verbalizer  # pylint: disable=g-import-not-at-top
  from persoma.train import main_eval  # pylint: disable=g-import-not-at-top
  macros = run_macros(model)
  try:
    n, sampler = int(macros["HISTORY_SIZE"]), macros["SAMPLER"].strip("'\"")
    seed = int(macros.get("DATA_SEED", "0"))
  except KeyError as e:
    raise SystemExit(f"error: {model}/config.gin has no {e.args[0]} binding") from None
  data_config = rationale_check.run_data_config(str(model / "config.gin"))
  if data_config is None or data_config.shown_label_config is None:
    raise SystemExit(f"error: {model}/config.gin binds no PersomaDataConfig.shown_label_config "
                     "(not a tuned-rule label run?)")
  tuned = tuned_rule.TunedRule.from_label_config(data_config.shown_label_config)
  path = seed_ensemble.member_inferences(model, split)
  try:
    ids, targets, predictions = main_eval.read_inferences(str(path))
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  examples = build_examples(data, split=split, history_size=n, sampler=sampler, seed=seed)
  if [ex.user_id for ex in examples] != ids:
    raise SystemExit(f"error: {path} does not hold the {split} users of {data.name} at N={n} "
                     f"({sampler}) in order: another dataset or split?")
  stats = tuned_rule.history_stats(data, examples)
  rule = tuned_rule.TunedRule.from_label_config(LabelConfig())
  preds = {"run": verbalizer.parse_many(predictions)[0].astype(bool),
           "tuned rule": tuned_rule.predict(stats, tuned, rule),
           "label rule": tuned_rule.predict(stats, rule, rule)}
  exact = stats["exact"]
  return {"users": len(ids), "whole_history_users": int(exact.sum()),
          "f1": group_scores(stats["truth"], preds, exact),
          "same_as_tuned_rule": {g: float((preds["run"][m] == preds["tuned rule"][m]).all(1)
                                          .mean()) for g, m in
                                 (("whole_history", exact), ("window", ~exact)) if m.any()},
          "rationale": rationale_figures(path, targets)}


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  embedding_probe.add_data_args(p)
  p.add_argument("--work_dir", required=True, help="the reproduce.py work dir")
  p.add_argument("--run", action="append", required=True, help="run id (repeatable)")
  p.add_argument("--json", default=None, help="also write the figures here")
  a = p.parse_args(argv)
  if embedding_probe.data_dir_missing(a):
    return 2
  models = seed_ensemble.run_models(a.work_dir, a.run)
  t0 = time.time()
  from persoma.seqio_tasks import config, tasks  # pylint: disable=g-import-not-at-top
  config.configure(data_dir=a.data_dir)
  data = tasks.load_data(a.dataset)
  out = {}
  print("| run | split | users (whole history) | F1 run / tuned rule / label rule: all | "
        "whole history | window | run = tuned rule (whole / window) | rationale genres, MAE |\n"
        "|---|---|---|---|---|---|---|---|")
  for run_id, model in zip(a.run, models):
    out[run_id] = {s: probe_run(data, model, s) for s in SPLITS}
    for s, r in out[run_id].items():
      cells = [" / ".join("–" if r["f1"][k][g] is None else f"{r['f1'][k][g]:.4f}"
                          for k in ("run", "tuned rule", "label rule"))
               for g in ("all", "whole_history", "window")]
      same = " / ".join(f"{r['same_as_tuned_rule'].get(g, float('nan')):.3f}"
                        for g in ("whole_history", "window"))
      rat = r["rationale"]
      rat_cell = "–" if rat is None else (f"{rat['same_genres']:.3f}, "
                                          f"{rat['mean_abs_error'] or 0:.3f}")
      print(f"| `{run_id}` | {s} | {r['users']} ({r['whole_history_users']}) | "
            + " | ".join(cells) + f" | {same} | {rat_cell} |")
  if a.json:
    from persoma import atomic_io  # pylint: disable=g-import-not-at-top
    atomic_io.write_text(a.json, json.dumps(
        {"command": "python benchmarks/exact_history_probe.py " + " ".join(argv or sys.argv[1:]),
         "runs": out}, indent=1) + "\n")
  print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
