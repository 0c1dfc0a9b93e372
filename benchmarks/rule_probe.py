"""Is the label rule on the shown items the best guess of the whole-history labels?

The rule baseline applies the label rule to the N shown items; the test targets apply it to the
whole history. ``persoma.tuned_rule`` keeps the rule's form and fits, per side, its threshold,
the most genres named, the fewest shown movies per genre and a shrinkage of the means on the
train users (the ``rule_tuned`` baseline of the program). This script prints, per history size,
the fitted values and both rules' F1 on the train, validation and test users, how many users
have their whole history shown (they keep the exact rule), and the fitted rule as bindings of
gin/experiments/persoma_genre_names_tuned.gin; where a LabelConfig cannot hold it (shrinkage, a
minimum count per side), the bindings hold the best rule one can, fitted the same way and scored
beside it. No embedding, no LM. With ``--mean_noise``, it also scores both rules on test users
whose per-genre mean ratings carry Gaussian noise of each given SD (stars; the mean F1 over
``--noise_draws`` draws): how well a model that knows the shown means only that closely can do.
It also scores the bindings' rule on the test users' statistics as a rationale target states
them (`as_written`: means to two decimals, no counts), the ceiling of the rationale readout.

  python benchmarks/rule_probe.py --data_dir ../shared/movielens --json benchmarks/repro/rule_probe.json
  python benchmarks/rule_probe.py --data_dir ../shared/movielens --history 50 --sampler random
  python benchmarks/rule_probe.py --data_dir ../shared/movielens --history 50 \
      --mean_noise 0.05,0.1,0.2 --json benchmarks/repro/rule_probe_noise.json

Prints one line per history size and a JSON summary as the last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import embedding_probe  # noqa: E402  (data flags)


def _scores(stats, pred) -> dict[str, float]:
  from persoma.metrics import weighted  # pylint: disable=g-import-not-at-top
  out = {**weighted.weighted_prf(stats["truth"], pred),
         **weighted.side_scores(stats["truth"], pred)}
  return {k: round(float(v), 4) for k, v in out.items() if k != "support"}


def noisy_means(stats: dict, sd: float, rng) -> dict:
  """``stats`` with Gaussian noise of SD ``sd`` (stars) on every per-genre shown mean."""
  return dict(stats, sums=stats["sums"] + sd * rng.standard_normal(stats["sums"].shape)
              * stats["counts"])


def as_written(stats: dict, rule, exact_rule, *, rounded: bool = True, counts: bool = False
               ) -> dict:
  """``stats`` as a rationale target states them (`persoma.data.labels.rationale`): each genre
  with the row's minimum count of shown movies (``exact_rule``'s on whole-history rows,
  ``rule``'s on the others) at its mean, to two decimals if ``rounded``, and without its count
  unless ``counts`` (every listed genre then counts the same, so the rule's ties fall to
  canonical genre order, as `persoma.metrics.readout.labels_from_means` reads them)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  c = stats["counts"]
  means = np.divide(stats["sums"], c, out=np.zeros_like(stats["sums"]), where=c > 0)
  means = np.round(means, 2) if rounded else means
  need = np.where(stats["exact"], exact_rule.liked.min_count, rule.liked.min_count)[:, None]
  listed = c >= need
  shown = np.where(listed, c, 0.0) if counts else np.where(listed, need, 0.0).astype(float)
  return dict(stats, sums=means * shown, counts=shown)


def _side(rule) -> str:
  return f"{rule.threshold:g} / {rule.max_count} / {rule.min_count} / {rule.shrink:g}"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  embedding_probe.add_data_args(p)
  p.set_defaults(history=None)
  p.add_argument("--seed", type=int, default=0, help="history sampler seed (the program's 0)")
  p.add_argument("--mean_noise", default="",
                 help="comma-separated SDs (stars) of noise on the shown means, e.g. 0.05,0.1")
  p.add_argument("--noise_draws", type=int, default=5, help="noise draws per SD (seeds 0..)")
  p.add_argument("--json", default=None,
                 help="also write the summary here (e.g. benchmarks/repro/rule_probe.json)")
  args = p.parse_args(argv)
  if embedding_probe.data_dir_missing(args):
    return 2
  try:
    noise_sds = [float(x) for x in args.mean_noise.split(",") if x.strip()]
  except ValueError:
    p.error(f"--mean_noise={args.mean_noise!r}: give comma-separated numbers, e.g. 0.05,0.1")
  if any(sd < 0 for sd in noise_sds) or args.noise_draws < 1:
    p.error("--mean_noise SDs must be >= 0 and --noise_draws >= 1")
  sizes = [args.history] if args.history else [5, 10, 50, 100]

  t0 = time.perf_counter()
  from persoma import tuned_rule  # pylint: disable=g-import-not-at-top
  from persoma.data import LabelConfig, build_examples  # pylint: disable=g-import-not-at-top
  from persoma.data.split import SPLITS  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config, tasks  # pylint: disable=g-import-not-at-top
  config.configure(data_dir=args.data_dir)
  data = tasks.load_data(args.dataset)
  rule = tuned_rule.TunedRule.from_label_config(LabelConfig())
  print(f"loaded {data.name}: {data.num_users} users in {time.perf_counter() - t0:.1f}s; "
        f"{len(tuned_rule.Grid().points('liked'))} grid points per side", flush=True)
  summary: dict[str, object] = {"dataset": data.name, "sampler": args.sampler,
                                "seed": args.seed, "sizes": {}}
  for n in sizes:
    stats = {s: tuned_rule.history_stats(data, build_examples(
        data, split=s, history_size=n, sampler=args.sampler, seed=args.seed)) for s in SPLITS}
    fitted = tuned_rule.fit(stats["train"], rule)
    row = {"fitted": dataclasses.asdict(fitted),
           "whole_history_shown": {s: round(float(stats[s]["exact"].mean()), 4) for s in SPLITS}}
    for s in SPLITS:
      row[f"rule_{s}"] = _scores(stats[s], tuned_rule.predict(stats[s], rule, rule))
      row[f"tuned_{s}"] = _scores(stats[s], tuned_rule.predict(stats[s], fitted, rule))
    try:
      cfg = fitted.to_label_config()
    except ValueError as e:  # shrinkage or per-side counts: no LabelConfig for the gin file
      # ... so the gin bindings hold the best rule a LabelConfig can (its scores beside it)
      plain = tuned_rule.fit_label_config(stats["train"], rule)
      cfg = plain.to_label_config()
      row["label_config_fit"] = {"why": str(e), "fitted": dataclasses.asdict(plain), **{
          f"tuned_{s}": _scores(stats[s], tuned_rule.predict(stats[s], plain, rule))
          for s in SPLITS}}
    # The readout's ceiling: the rule a rationale run is trained on (the gin bindings below),
    # applied to what its exact rationale states (two decimals, no counts) per row
    held = tuned_rule.TunedRule.from_label_config(cfg)
    views = {"exact": stats["test"]}
    for name, kw in (("two_decimals", {"counts": True}), ("no_counts", {"rounded": False}),
                     ("as_written", {})):
      views[name] = as_written(stats["test"], held, rule, **kw)
    preds = {k: tuned_rule.predict(st, held, rule) for k, st in views.items()}
    view = {k: _scores(st, preds[k]) for k, st in views.items()}
    row["rationale_view_test_f1"] = {k: v["f1"] for k, v in view.items()}
    exact_pred = preds["exact"]
    row["rationale_view_test_users_changed"] = int(
        (preds["as_written"] != exact_pred).any(axis=1).sum())
    print(f"  N={n}: the gin bindings' rule on the test users' exact statistics "
          f"{view['exact']['f1']:.4f}; as a rationale states them: means to two decimals "
          f"{view['two_decimals']['f1']:.4f}, no counts (canonical ties) "
          f"{view['no_counts']['f1']:.4f}, both (the rationale readout's ceiling) "
          f"{view['as_written']['f1']:.4f}, labels changed for "
          f"{row['rationale_view_test_users_changed']} of {len(exact_pred)} users", flush=True)
    row["gin"] = {"SHOWN_LIKE_THRESHOLD": cfg.like_threshold,
                  "SHOWN_DISLIKE_THRESHOLD": cfg.dislike_threshold,
                  "SHOWN_MAX_LIKED": cfg.max_liked, "SHOWN_MAX_DISLIKED": cfg.max_disliked,
                  "SHOWN_MIN_GENRE_COUNT": cfg.min_genre_count}
    if noise_sds:
      import numpy as np  # pylint: disable=g-import-not-at-top
      row["mean_noise_test_f1"] = {}
      for sd in noise_sds:
        f1 = {"rule": [], "tuned": []}
        for draw in range(args.noise_draws):
          st = noisy_means(stats["test"], sd, np.random.default_rng(draw))
          f1["rule"].append(_scores(st, tuned_rule.predict(st, rule, rule))["f1"])
          f1["tuned"].append(_scores(st, tuned_rule.predict(st, fitted, rule))["f1"])
        row["mean_noise_test_f1"][str(sd)] = {k: round(float(np.mean(v)), 4)
                                              for k, v in f1.items()}
        print(f"  N={n}, shown means with noise SD {sd:g} stars ({args.noise_draws} draws): "
              f"test F1 rule {np.mean(f1['rule']):.4f}, tuned {np.mean(f1['tuned']):.4f}",
              flush=True)
    summary["sizes"][str(n)] = row
    print(f"N={n} {args.sampler}: test F1 rule {row['rule_test']['f1']:.4f}, tuned "
          f"{row['tuned_test']['f1']:.4f} (validation {row['rule_validation']['f1']:.4f} -> "
          f"{row['tuned_validation']['f1']:.4f}; train {row['rule_train']['f1']:.4f} -> "
          f"{row['tuned_train']['f1']:.4f}); whole history shown for "
          f"{row['whole_history_shown']['test']:.0%} of the test users; fitted liked "
          f"{_side(fitted.liked)}, disliked {_side(fitted.disliked)} (threshold / most named / "
          f"fewest movies / shrinkage); {time.perf_counter() - t0:.0f}s", flush=True)
    plain = row.get("label_config_fit")
    if plain:
      print(f"  {plain['why']}; the best rule a LabelConfig can hold: liked "
            f"{_side(tuned_rule.SideRule(**plain['fitted']['liked']))}, disliked "
            f"{_side(tuned_rule.SideRule(**plain['fitted']['disliked']))}, test F1 "
            f"{plain['tuned_test']['f1']:.4f} (validation {plain['tuned_validation']['f1']:.4f})",
            flush=True)
    print("  gin/experiments/persoma_genre_names_tuned.gin bindings: "
          + " ".join(f"--gin.{k}={v}" for k, v in row["gin"].items()), flush=True)
  summary["seconds"] = round(time.perf_counter() - t0, 1)
  summary["command"] = "python benchmarks/rule_probe.py " + " ".join(argv or sys.argv[1:])
  print(json.dumps(summary))
  if args.json:
    from persoma import atomic_io  # pylint: disable=g-import-not-at-top
    atomic_io.write_text(args.json, json.dumps(summary, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
