"""How well a model trained with rationale targets writes them, and what its labels follow.

A run with `PersomaDataConfig.target_rationale` writes `Shown: Action 3.75, Drama 4.10.` (the
label rule's working on the shown items) before `Liked Genres: ...`. For each predictions file
(`persoma-eval --checkpoint DIR --split test --predictions` writes
`inferences_<split>_step<step>.jsonl`) this prints, over its users:

  * the genres written: precision and recall against the target's rationale, and the share of
    users whose genre list is exactly right;
  * the mean absolute error of the written means on the genres both list, and the share of
    those that fall on the other side of the like (3.5) or dislike (3.0) threshold; for a run
    whose rationale writes each genre's movie count (`PersomaDataConfig.rationale_counts`),
    the share of those genres whose count is right (`count_exact`) and the mean absolute
    error of the written counts (`count_mean_abs_error`; both NaN without counts);
  * the weighted F1 of the model's own labels, of the label rule applied to what it wrote
    (`persoma.metrics.readout`, each written genre qualifying, equal means ranked by the
    written counts where there are any; `_stated_ties`: equal means ranked by the labels the
    model states, `--readout_ties stated`), and of the rule on the
    target's rationale (the rule on the shown items), all against the target labels; and how
    often the model's labels equal the rule on its own rationale (as sets, order aside), in
    all, per side, and for the liked side where the rule must rank (more than 3 written
    genres over the like threshold, so the labels are the top max_liked of them).

"The rule" is the one the run trained with, read from the `config.gin` of the model dir above
the file (`<model dir>/best/inferences_...jsonl`): its `PersomaDataConfig.shown_label_config`,
which writes the rationale (e.g. the tuned rule of `gin/experiments/*tuned*.gin`), else its
`label_config`, else the defaults (3 movies, like > 3.5, dislike < 3.0, 3 per side). A file with
no `config.gin` above it, or `--rule default`, uses the defaults; the rule used is printed and
written to --json as `rule`. The rule is applied to every user: a tuned-rule run's labels
estimate the whole-history target, which for a user whose whole history is shown is the default
rule on it (as `persoma.tuned_rule.predict` does); this file cannot tell those users apart, so
for such runs `benchmarks/exact_history_probe.py` (`same_as_tuned_rule`, per group) is the
closer measure of how far the labels follow the tuned rule. A run with
`PersomaDataConfig.whole_rationale` does tell them apart: a rationale headed `Whole:` (the
target's, or the model's own) is read under the run's `label_config` (else the defaults), the
rule those rows' labels follow; `whole_rows` counts the targets so headed.

  python benchmarks/rationale_check.py FILE.jsonl [FILE2.jsonl ...] [--rule {run,default}]
      [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from persoma import atomic_io
from persoma.data import formats, labels as labels_lib
from persoma.metrics import readout, verbalizer, weighted
from persoma.train import main_eval

RULES = ("run", "default")


def run_data_config(gin_file: str):
  """The `PersomaDataConfig` a run's `config.gin` binds (None if it never imports it). A file
  that does not parse is a SystemExit naming it."""
  import gin  # pylint: disable=g-import-not-at-top
  from persoma.seqio_tasks import config as config_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import gin_cli  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    gin_cli.parse([gin_file], [], "")
    try:
      configurable = gin.get_configurable(config_lib.PersomaDataConfig)
    except ValueError:  # the file never imports the data config, so binds none of it
      return None
    return configurable()
  except Exception as e:  # gin's own errors name the binding, not always the file
    raise SystemExit(f"error: {gin_file}: cannot read the run's label rule: {e}") from None
  finally:
    gin.clear_config()


def run_rules(path: str, rule: str = "run"
              ) -> tuple[labels_lib.LabelConfig, str, labels_lib.LabelConfig | None]:
  """The rules of the run that wrote `path`, from one read of its config.gin: its label rule
  (see the module docstring), where that was read from, and the rule of its `Whole:`
  rationales (its `label_config`, else the defaults, when it trained with `whole_rationale`;
  None otherwise or under --rule default). A config.gin that does not parse is a SystemExit
  naming it."""
  if rule not in RULES:
    raise ValueError(f"rule={rule!r}: use one of {RULES}")
  model_dir = main_eval.model_dir_of(os.path.dirname(os.path.abspath(os.path.expanduser(path))))
  if rule == "default" or not model_dir:
    why = "--rule default" if rule == "default" else "no config.gin above the file"
    return labels_lib.LabelConfig(), f"defaults ({why})", None
  gin_file = os.path.join(model_dir, "config.gin")
  data = run_data_config(gin_file)
  whole = ((data.label_config or labels_lib.LabelConfig())
           if data is not None and data.whole_rationale else None)
  if data is not None and data.shown_label_config is not None:
    return data.shown_label_config, f"{file_key(gin_file)}: shown_label_config", whole
  if data is not None and data.label_config is not None:
    return data.label_config, f"{file_key(gin_file)}: label_config", whole
  return (labels_lib.LabelConfig(), f"defaults ({file_key(gin_file)} binds no label config)",
          whole)


def shared_rules(paths: list[str]
                 ) -> tuple[labels_lib.LabelConfig, str, labels_lib.LabelConfig | None]:
  """`run_rules` of the first of `paths`, the files of several runs read as one (an ensemble):
  a run whose rules differ from the first's is a SystemExit naming both files."""
  rules = [run_rules(p) for p in paths]
  for p, (cfg, source, whole) in zip(paths[1:], rules[1:]):
    if (cfg, whole) != (rules[0][0], rules[0][2]):
      raise SystemExit(f"error: {p} reads under {cfg} ({source}), but {paths[0]} under "
                       f"{rules[0][0]} ({rules[0][1]}): the runs must share one rule")
  return rules[0]


def check_same_users(path, ids: list, truth: np.ndarray, ref_path, ref_ids: list,
                     ref_truth: np.ndarray) -> None:
  """A ValueError naming both files unless `path` holds `ref_path`'s users (`ids`) with its
  target labels (`[n, 38]` `truth`) in the same order: runs read as one must share the data
  seed and split. Their target texts may differ (rationales with and without counts)."""
  if list(ids) != list(ref_ids) or not np.array_equal(truth, ref_truth):
    raise ValueError(f"{path} and {ref_path} hold different users or target labels (the runs "
                     "must share the data seed and split)")


def _rule(rationale: dict[str, float], cfg: labels_lib.LabelConfig,
          counts: dict[str, int] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The label rule on written means and counts
  (`persoma.metrics.readout.labels_from_means`)."""
  lab = readout.labels_from_means(rationale, cfg, counts=counts)
  return lab.liked, lab.disliked


def _as_sets(pair) -> tuple[frozenset[str], frozenset[str]]:
  return frozenset(pair[0]), frozenset(pair[1])


def _side(mean: float, cfg: labels_lib.LabelConfig) -> int:
  return int(mean > cfg.like_threshold) - int(mean < cfg.dislike_threshold)


def check(path: str, cfg: labels_lib.LabelConfig = labels_lib.LabelConfig(),
          whole_cfg: labels_lib.LabelConfig | None = None) -> dict[str, float]:
  """The figures above for one predictions JSONL file, with `cfg` as the label rule and
  `whole_cfg` (None: `cfg`) as the rule of rationales headed `Whole:`."""
  def is_whole(text: str) -> bool:
    return formats.rationale_header(text) == formats.WHOLE_RATIONALE_HEADER

  def rule_of(whole: bool) -> labels_lib.LabelConfig:
    return whole_cfg if whole and whole_cfg is not None else cfg

  try:
    _, targets, preds = main_eval.read_inferences(os.path.expanduser(path))
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  rows = list(zip(targets, preds))
  true_pairs, model_pairs, written_rule, shown_rule, must_rank = [], [], [], [], []
  stated_ties = []
  tp = n_written = n_true = exact = missing = whole_rows = 0
  errs, flips, count_err = [], 0, []
  for target, pred in rows:
    t_parsed = readout.parse_canonical(target)
    if t_parsed is None:
      raise SystemExit(f"error: {path}: target {target[:80]!r} has no rationale; was the run "
                       "trained with PersomaDataConfig.target_rationale?")
    t_rat, t_counts = t_parsed
    t_whole = is_whole(target)
    t_cfg, p_cfg = rule_of(t_whole), rule_of(is_whole(pred))
    whole_rows += t_whole
    p_parsed = readout.parse_canonical(pred)
    missing += p_parsed is None
    p_rat, p_counts = p_parsed or ({}, {})
    t, p = verbalizer.parse(target), verbalizer.parse(pred)
    true_pairs.append((t.liked, t.disliked))
    model_pairs.append((p.liked, p.disliked))
    written_rule.append(_rule(p_rat, p_cfg, p_counts))
    lab = readout.labels_from_means(p_rat, p_cfg, readout.stated_weights([pred]), p_counts)
    stated_ties.append((lab.liked, lab.disliked))
    must_rank.append(sum(m > p_cfg.like_threshold for m in p_rat.values()) > p_cfg.max_liked)
    shown_rule.append(_rule(t_rat, t_cfg, t_counts))
    common = set(t_rat) & set(p_rat)
    tp += len(common)
    n_written += len(p_rat)
    n_true += len(t_rat)
    exact += set(t_rat) == set(p_rat)
    for g in common:
      errs.append(abs(t_rat[g] - p_rat[g]))
      flips += _side(t_rat[g], t_cfg) != _side(p_rat[g], t_cfg)
      if g in t_counts and g in p_counts:
        count_err.append(abs(p_counts[g] - t_counts[g]))
      elif g in t_counts:  # written without its count
        count_err.append(float("nan"))
  n = len(rows)
  written_counts = [c for c in count_err if not np.isnan(c)]
  liked_ok = np.array([set(m[0]) == set(w[0]) for m, w in zip(model_pairs, written_rule)])
  must_rank = np.array(must_rank, dtype=bool)
  return {
      "users": n, "no_rationale": missing, "whole_rows": whole_rows,
      "genre_precision": tp / max(n_written, 1), "genre_recall": tp / max(n_true, 1),
      "genre_set_exact": exact / n,
      "mean_abs_error": float(np.mean(errs)) if errs else float("nan"),
      "threshold_side_flips": flips / max(len(errs), 1),
      "count_exact": float(np.mean(np.array(count_err) == 0)) if count_err else float("nan"),
      "count_mean_abs_error": (float(np.mean(written_counts)) if written_counts
                               else float("nan")),
      "f1_model_labels": weighted.score_sets(true_pairs, model_pairs)["f1"],
      "f1_rule_on_written": weighted.score_sets(true_pairs, written_rule)["f1"],
      "f1_rule_on_written_stated_ties": weighted.score_sets(true_pairs, stated_ties)["f1"],
      "f1_rule_on_shown": weighted.score_sets(true_pairs, shown_rule)["f1"],
      "labels_follow_own_rationale": float(np.mean(
          [_as_sets(m) == _as_sets(w) for m, w in zip(model_pairs, written_rule)])),
      "liked_follow_own_rationale": float(np.mean(liked_ok)),
      "disliked_follow_own_rationale": float(np.mean(
          [set(m[1]) == set(w[1]) for m, w in zip(model_pairs, written_rule)])),
      "liked_must_rank": float(np.mean(must_rank)),
      "liked_follow_where_ranked": (float(np.mean(liked_ok[must_rank])) if any(must_rank)
                                    else float("nan")),
  }


def file_key(path: str) -> str:
  """`path` absolute, with the home directory written `~`: one key per file in --json, however
  the path was typed, and none that names this machine's user."""
  full = os.path.abspath(os.path.expanduser(path))
  home = os.path.expanduser("~")
  return "~" + full[len(home):] if full.startswith(home + os.sep) else full


def _describe(cfg: labels_lib.LabelConfig) -> str:
  return (f"min {cfg.min_genre_count} movies, liked > {cfg.like_threshold:g} (at most "
          f"{cfg.max_liked}), disliked < {cfg.dislike_threshold:g} (at most {cfg.max_disliked})")


def main(argv: list[str] | None = None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("files", nargs="+", help="inferences_<split>_step<step>.jsonl files")
  ap.add_argument("--rule", choices=RULES, default="run",
                  help="the label rule: the run's (from the config.gin above each file; the "
                  "default) or the default LabelConfig")
  ap.add_argument("--json", help="also write the figures here, keyed by file (its absolute "
                  "path, the home directory as ~; added to the file's other entries, which are "
                  "kept)")
  args = ap.parse_args(argv)
  try:
    kept = atomic_io.read_json_to_extend(args.json, dict) if args.json else {}
  except ValueError as e:
    raise SystemExit(f"error: --json {e}") from None
  out = {}
  for path in args.files:
    cfg, source, whole_cfg = run_rules(path, args.rule)
    try:
      figures = check(path, cfg, whole_cfg)
    except OSError as e:
      raise SystemExit(f"error: {path}: {e.strerror or e}") from None
    key = file_key(path)
    out[key] = {**figures, "rule": f"{_describe(cfg)} from {source}"}
    if whole_cfg is not None:
      out[key]["whole_rule"] = _describe(whole_cfg)
    print(key)
    print(f"  rule: {_describe(cfg)} ({source})")
    if whole_cfg is not None:
      print(f"  rule of Whole: rationales: {_describe(whole_cfg)}")
    for k, v in figures.items():
      print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
  if args.json:
    atomic_io.write_text(args.json, json.dumps({**kept, **out}, indent=2, sort_keys=True)
                         + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
