"""docs/RESULTS.md and the F1-vs-history-size plot, generated from the collected results only.

Every figure on the page comes from a result JSON of a finished run; runs not finished are
listed as missing (never filled in). The papers' numbers are shown beside ours only where a
paper reports that exact cell, marked with the model and data they come from.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from repro import ensembles, marginals_table, readout_table
from repro import plan as plan_lib
from repro import seeds
from repro import targets

REGENERATE = ("python benchmarks/reproduce.py --data_dir ../shared/movielens "
              "--work_dir ~/persoma_repro")

# (method, N, sampler, fmt) -> (F1, source). Only cells a paper states; PaLM 2 / T5 models on
# MovieLens at the papers' (20M-scale) data, so not directly comparable with T5-small on ml-1m.
PAPER_F1: dict[tuple[str, int, str, str], tuple[float, str]] = {
    ("persoma_mlp", 50, "recency", "uem"): (
        0.569, "PERSOMA paper (Hebert et al. 2024, arXiv:2408.00960), PaLM 2, MovieLens"),
}
PAPER_NOTE = ("Paper figures (marked †) come from models and data other than ours: PERSOMA "
              "(Hebert et al. 2024) uses PaLM 2, UEM (Doddapaneni et al. 2024) T5, both on "
              "MovieLens-20M-scale data with their own user split; ours are T5 trained from "
              "scratch here on MovieLens 1M. Compare the trends, not the digits.")


_fmt = marginals_table.fmt  # the page's one figure format


def _secs(s: Any) -> str:
  if not isinstance(s, (int, float)):
    return "–"
  s = int(round(s))
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _paper(r: Mapping[str, Any]) -> str:
  hit = PAPER_F1.get((r["method"], r["history_size"], r.get("sampler"), r.get("fmt") or "uem"))
  if hit is None or r["kind"] != "train":
    return ""
  return f"{hit[0]:.3f}†"


def _prf_rows(rows: Iterable[Mapping[str, Any]], key: str, key_name: str,
              paper: bool = False) -> list[str]:
  head = (f"| Method | {key_name} | F1 | Precision | Recall | F1 liked | F1 disliked | Users |"
          + (" Paper F1 |" if paper else ""))
  out = [head, "|" + "---|" * (head.count("|") - 1)]
  for r in rows:
    line = (f"| {r['label']}{_mode_suffix(r)} | {r[key] if r[key] != '' else '–'} | "
            f"{_fmt(r['f1'])} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | "
            f"{_fmt(r.get('f1_liked'))} | {_fmt(r.get('f1_disliked'))} | "
            f"{r.get('users', '–')} |")
    out.append(line + (f" {_paper(r)} |" if paper else ""))
  return out


def _mode_suffix(r: Mapping[str, Any], with_init: bool = True) -> str:
  if r["kind"] != "train":
    return ""
  tag = {"lora": f" (LoRA r={plan_lib.LORA_RANK})", "frozen": " (frozen LM)"}.get(
      r.get("mode"), "")
  return tag + (" on task-adapted base" if r.get("init_from") and with_init else "")


def _labels_cell(r: Mapping[str, Any]) -> str:
  """Group 6's key column: the augmented copies' label source (+ histories per user if set)."""
  if r["kind"] != "train":
    return ""
  k = r.get("train_resamples")
  return (r.get("resample_labels") or "history") + (f", {k} histories per user" if k else "")


def _pool_cell(r: Mapping[str, Any], default_steps: int) -> str:
  """Group 8's key column: N and label source, plus the step budget of a longer run."""
  cell = f"{r['history_size']}, {_labels_cell(r)} labels"
  return cell + (f"; {_budget_text(r, default_steps)}" if r.get("train_steps") else "")


def _factors_text() -> str:
  """'3x or 6x': the step multiples group 7 trains for."""
  factors = sorted({f for by_labels in plan_lib.LONG_TRAIN_METHODS.values()
                    for fs in by_labels.values() for f in fs})
  return " or ".join(f"{f}x" for f in factors)


def _steps_cell(r: Mapping[str, Any], default_steps: int) -> str:
  """Group 7's key column: label source, step budget and best (selected) step."""
  if r["kind"] != "train":
    return ""
  return f"{r.get('resample_labels') or 'history'}, {_budget_text(r, default_steps)}"


def _steps_rows(rows: Iterable[Mapping[str, Any]], default_steps: int) -> list[str]:
  """Groups 7 and 10's table: label source, step budget and best step per row."""
  return _prf_rows([dict(r, train_steps=_steps_cell(r, default_steps)) for r in rows],
                   "train_steps", "Labels, steps")


def _budget_text(r: Mapping[str, Any], default_steps: int) -> str:
  """'7,500 steps (best 6,000); steps 1–2,500 are `<shorter run>`'s' of a train result, with
  'stopped early at 4,500' in the brackets where early stopping ended it before its budget."""
  budget = int(r.get("train_steps") or default_steps)
  text = f"{budget:,} steps"
  notes = [f"best {int(r['best_step']):,}"] if r.get("best_step") else []
  if r.get("steps_trained") and int(r["steps_trained"]) < budget:
    notes.append(f"stopped early at {int(r['steps_trained']):,}")
  if notes:
    text += f" ({'; '.join(notes)})"
  warm = r.get("warm_start") or {}
  if warm.get("step"):
    text += f"; steps 1–{int(warm['step']):,} are `{warm['from']}`'s"
    if warm.get("new_targets"):
      text += ", then its own targets"
  return text


def _index(seq: Sequence[str], x: Any) -> int:
  return seq.index(x) if x in seq else len(seq)


def _cost_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
  cost = {(r["method"], r["history_size"]): r for r in results
          if r["kind"] == "cost" and r.get("fmt", "uem") == "uem"}
  if not cost:
    return ["No input-cost measurements yet."]
  out = ["| N | Text prompting tokens | PERSOMA tokens | PERSOMA-Perceiver tokens | "
         "Text / PERSOMA | Text / Perceiver | Text step (s) | PERSOMA step (s) | "
         "Perceiver step (s) | Text / PERSOMA step | Text / Perceiver step |",
         "|" + "---|" * 11]
  for n in plan_lib.HISTORY_SIZES:
    t, p, q = (cost.get((m, n)) for m in plan_lib.COST_METHODS)
    tok = [targets.encoder_tokens(c) if c and "encoder_tokens" in c else None
           for c in (t, p, q)]
    st = [c.get("step_secs") if c else None for c in (t, p, q)]

    def ratio(a, b):
      return f"{a / b:.1f}x" if a and b else "–"

    def step(c, s):
      if s is not None:
        return f"{s:.3f}"
      return "not run" + (f" ({c['step_skip_reason']})" if c and c.get("step_skip_reason")
                          else "")

    out.append(f"| {n} | {_fmt(tok[0], 1)} | {_fmt(tok[1], 1)} | {_fmt(tok[2], 1)} | "
               f"{ratio(tok[0], tok[1])} | {ratio(tok[0], tok[2])} | {step(t, st[0])} | "
               f"{step(p, st[1])} | {step(q, st[2])} | {ratio(st[0], st[1])} | "
               f"{ratio(st[0], st[2])} |")
  batch = next((c.get("cost_batch") for c in cost.values() if c.get("cost_batch")), None)
  out.append("")
  out.append(f"Encoder tokens per example: text prompting = task prompt + mean tokens of the "
             f"rendered history + instruction + EOS over the test users (the run's vocabulary; "
             f"before session 15 this column left out the task prompt); PERSOMA = N "
             f"soft-prompt tokens + task prompt + instruction; Perceiver = R latents + task "
             f"prompt + instruction. Step times: median jitted train step (forward + backward "
             f"+ update, T5 at the run size, full tuning) at batch {batch} on the machine that "
             f"ran the program; text prompting runs at its padded INPUTS_LENGTH (the longest "
             f"history of the task). On a shared host the absolute seconds vary with load; the "
             f"ratios are what to read.")
  return out


def program_meta(s: plan_lib.Settings, planned: int, work_dir: str, jobs: int) -> dict[str, Any]:
  """What the page says about the program: data, model, steps, and the command that ran it."""
  d = plan_lib.gin_default
  labels = {"movielens_1m": "MovieLens 1M (GroupLens ml-1m, pruned: movies and users with "
                            ">= 20 ratings) with TMDB overviews as descriptions",
            "synthetic": "SYNTHETIC MovieLens-like data (built-in generator)"}
  cmd = "python benchmarks/reproduce.py"
  if s.dataset != "movielens_1m":
    cmd += f" --dataset {s.dataset}"
  if s.data_dir:
    cmd += " --data_dir ../shared/movielens"
  cmd += f" --work_dir {work_dir}" + (f" --jobs {jobs}" if jobs > 1 else "")
  for flag, v in (("max_steps", s.train_steps), ("eval_every", s.eval_every),
                  ("max_eval_examples", s.max_eval_examples), ("model_size", s.model_size),
                  ("batch_size", s.batch_size), ("encoder", s.encoder)):
    if v is not None:
      cmd += f" --{flag} {v}"
  return {"dataset": s.dataset, "dataset_label": labels.get(s.dataset, s.dataset),
          "model_size": s.model_size or d("MODEL_SIZE"),
          "train_steps": s.train_steps or d("TRAIN_STEPS"),
          "batch_size": s.batch_size or d("BATCH_SIZE"),
          "learning_rate": d("LEARNING_RATE"),
          "eval_every": s.eval_every or d("EVAL_EVERY_STEPS"),
          "encoder": s.encoder or d("ENCODER"), "planned": planned, "command": cmd,
          "standardize": d("STANDARDIZE_EMBEDDINGS"),
          "train_resamples": d("TRAIN_RESAMPLES")}


def render(results: Sequence[Mapping[str, Any]], *, meta: Mapping[str, Any],
           missing: Sequence[tuple[str, str, str]], plot_file: str | None) -> str:
  """The RESULTS.md text.

  Args:
    results: valid result dicts (with `groups`).
    meta: program facts (dataset, model size, steps, batch, encoder, command, planned count;
      `text_tokens`: see `targets.check_targets`).
    missing: (run_id, status, detail) of planned runs without a valid result.
    plot_file: the PNG's file name beside RESULTS.md (None: no plot).
  """
  synthetic = meta.get("dataset") == "synthetic" or any(r.get("synthetic") for r in results)
  L = ["# persoma: reproduction results (issue 5)", ""]
  if synthetic:
    L += ["> **SYNTHETIC DATA — a smoke run of the harness, not a result.** These figures come "
          "from the built-in synthetic MovieLens-like generator.", ""]
  now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
  n_skipped = sum(st == "skipped" for _, st, _ in missing)
  skipped = f", {n_skipped} skipped as unable to run here" if n_skipped else ""
  L += [f"Generated by `benchmarks/reproduce.py` on {now} "
        f"from {len(results)} finished runs of {meta.get('planned', '?')} planned "
        f"({len(missing) - n_skipped} not finished{skipped}). Do not edit by hand.", "",
        *(["**No model run has finished yet**: only the non-learned baselines and the input-cost "
           "measurements are in; the model runs are listed under *Not finished or skipped* "
           "(`--budget` projects their wall time on a given machine).", ""]
          if not any(r["kind"] == "train" for r in results) else []),
        "Regenerate everything (skips finished runs, resumes interrupted ones):", "",
        f"    {meta.get('command', REGENERATE)}", "",
        "and only this page and the plot from collected results: add `--plot_only`.", "",
        "## Setting", "",
        f"- Data: {meta.get('dataset_label', meta.get('dataset'))}; users split 90/5/5 by a stable "
        "hash of the user id; every method sees the same test users and the same sampled "
        "histories; metric: class-weighted F1 / precision / recall over 19 genres x "
        "liked/disliked (scikit-learn `average='weighted'`); F1 liked / F1 disliked: the same "
        "over the 19 classes of one side (– where a run predates them).",
        f"- Model: T5 v1.1 `{meta.get('model_size')}` trained from scratch (no pretrained "
        f"checkpoint on this machine), {meta.get('train_steps')} steps max, batch "
        f"{meta.get('batch_size')}, AdamW lr {meta.get('learning_rate')}, validation F1 every "
        f"{meta.get('eval_every')} steps with early stopping and best-checkpoint selection; "
        f"item embeddings: `{meta.get('encoder')}`"
        + (", z-scored per dimension within each text slot" if meta.get("standardize") == "True"
           else "") + (f"; {meta.get('train_resamples')} histories per train user per epoch "
                       "(the sampler's, then random time windows of the same user, same label)"
                       if str(meta.get("train_resamples") or "1") != "1" else "") + ".",
        "- Baselines: counting (the papers'), the label rule on the shown items, all 38 "
        "classes for every user, and the tuned rule (a persoma addition, "
        "`persoma/tuned_rule.py`): the label rule with its per-side threshold, count, minimum "
        "genre count and a shrinkage of the means fitted on the train users' shown histories "
        "to predict their whole-history labels (users whose whole history is shown keep the "
        "rule); the fitted values are in each run's ledger entry.",
        f"- {PAPER_NOTE}", ""]
  L += ["## Targets (issue 5)", ""]
  L += targets.check_targets(results, meta.get("text_tokens")) + [""]
  by_group = {g: sorted((r for r in results if g in r["groups"]),
                        key=lambda r: (plan_lib.method_order(r["method"]), r["history_size"],
                                       _index(plan_lib.SAMPLERS, r.get("sampler")),
                                       _index(plan_lib.FORMATS, r.get("fmt")),
                                       r.get("init_from") or "",
                                       _index(("full", "lora", "frozen"), r.get("mode")),
                                       _index(plan_lib.RESAMPLE_LABELS,
                                              r.get("resample_labels") or "history"),
                                       r.get("train_resamples") or 0,
                                       r.get("train_steps") or 0))
              for g in plan_lib.GROUPS}
  L += [f"## {plan_lib.GROUPS['history']}", ""]
  if plot_file:
    L += [f"![F1 against history size]({plot_file})", ""]
    if any(len(v) > 1 for v in seeds.seed_f1s(results).values()):
      L += ["Lines: the program's seed (the table below; dotted: group 8's adapters with the "
            "program's labels, and the rank-feature adapter of groups 7-8 on the rule tuned at "
            "each N, 2,500 steps); vertical bars: lowest to highest test F1 over the seeds that "
            "finished (group 9).", ""]
  L += _prf_rows([r for r in by_group["history"]], "history_size", "N", paper=True) + [""]
  L += _f1_matrix(by_group["history"]) + [""]
  L += [f"## {plan_lib.GROUPS['samplers']}", ""]
  L += _prf_rows(by_group["samplers"], "sampler", "Sampler") + [""]
  L += [f"## {plan_lib.GROUPS['formats']}", ""]
  L += _prf_rows(by_group["formats"], "fmt", "Format") + [""]
  L += [f"## {plan_lib.GROUPS['modes']}", "",
        "**The task-adapted base stands in for a pretrained checkpoint.** No pretrained T5 is "
        "available on this machine, so the T5 is first trained on the text-prompting task "
        f"(N={plan_lib.BASE_N}, {plan_lib.BASE_FMT} format; run `{plan_lib.base_run_id()}`) "
        "and its best "
        "checkpoint initialises the PERSOMA-MLP runs below, which then train everything "
        "(full), LoRA factors + adapter + task prompt (lora), or adapter + task prompt only "
        "(frozen). The from-scratch full run is listed for reference.", ""]
  rows = by_group["modes"]
  L += ["| Method | Init | Trainable params | F1 | Precision | Recall |",
        "|---|---|---|---|---|---|"]
  for r in rows:
    init = "task-adapted base" if r.get("init_from") else "scratch"
    if r["run_id"] == plan_lib.base_run_id():
      init += " (this run is the base)"
    tp = r.get("params_trainable")
    L.append(f"| {r['label']}{_mode_suffix(r, with_init=False)} | {init} | "
             f"{f'{tp:,}' if isinstance(tp, int) else '–'} | {_fmt(r['f1'])} | "
             f"{_fmt(r['precision'])} | {_fmt(r['recall'])} |")
  L += ["", f"## {plan_lib.GROUPS['cost']}", ""] + _cost_table(results) + [""]
  L += [f"## {plan_lib.GROUPS['labels']}", "",
        "Each train user contributes its sampler's history plus 3 histories drawn from random "
        "time windows of its ratings (15 in the row that says 16 histories per user). The "
        "program labels those with the user's whole-history "
        "target (`history`). `window` labels each with the label rule applied to its own time "
        "window, treating the window as a whole user (the shown items relate to the label as a "
        "test user's do); `shown` applies the rule to the shown items only. Copies whose own "
        "label is empty are dropped. Validation and test users are never relabelled.", ""]
  L += _prf_rows([dict(r, resample_labels=_labels_cell(r)) for r in by_group["labels"]],
                 "resample_labels", "Augmented-copy labels") + [""]
  default_steps = int(meta.get("train_steps") or plan_lib.gin_default("TRAIN_STEPS"))
  L += [f"## {plan_lib.GROUPS['steps']}", "",
        f"The program trains every run for at most {default_steps:,} steps; the runs below "
        f"train the same configuration for {_factors_text()} as many (same "
        "validation-F1 early stopping and best-checkpoint selection). The learning rate "
        "does not depend on the step budget (warmup, then constant), so a longer run "
        "repeats the shorter one's first steps exactly; the program therefore starts it from "
        "the last checkpoint of the next shorter run of the same labels when that run trained "
        "to its end "
        "(`tests/test_resume.py` checks that this gives the parameters of a run from step "
        "0). Its wall time in the Runs table counts the added steps only. The ranked "
        "rationale targets (`gin/experiments/persoma_mlp_rationale_ranked.gin`, a persoma "
        "addition run in this group only) list the rationale's genres (group 8) highest mean "
        "first, so the labels are its first genres over 3.5 and its last under 3.0. "
        "Tuned-rule labels (`gin/experiments/persoma_genre_names_tuned.gin`, a persoma "
        "addition run in this group only) train PERSOMA-GenreStats with anchors and rationale "
        "targets on `shown` labels from the rule fitted on the train users at N=50 (the "
        "`rule_tuned` baseline, `persoma/tuned_rule.py`) instead of the label rule; its "
        "rationale lists the genres with at least that rule's 2 shown movies. With length "
        "features (`gin/experiments/persoma_genre_names_tuned_len.gin`, a persoma addition) "
        "the adapter's genre tokens also see how many items are shown and whether fewer than "
        "N are, i.e. the user's whole history, whose labels the label rule gives exactly. With "
        "rank features as well (`gin/experiments/persoma_genre_names_tuned_rank.gin`, a "
        "persoma addition) they also see, among the genres with at least 2 and at least 3 "
        "shown movies, how many rank above and below them by mean, so the top 3 liked and "
        "bottom disliked genres need no ranking by the LM. PERSOMA-MLP with item heads and "
        "rationale targets on the same tuned-rule labels "
        "(`gin/experiments/persoma_mlp_rationale_tuned.gin`, a persoma addition) is the plain "
        "MLP adapter's counterpart of these runs, and with the adapter's length token "
        "(`gin/experiments/persoma_mlp_rationale_tuned_len.gin`, a persoma addition) one more "
        "token after the items says how many are shown and whether fewer than N are. With a "
        "genre probe (`gin/experiments/persoma_mlp_rationale_tuned_probe.gin`, a persoma "
        "addition) a linear head on the T5 encoder's output at the first 19 task-prompt "
        "positions is trained to give each genre's shown count, mean rating and class under "
        "the tuned rule; decoding never reads it, so only the encoder's training changes. "
        "In `gin/experiments/persoma_mlp_rationale_tuned_probe_whole.gin` (a persoma "
        "addition) a row showing fewer than N items, a whole history, writes `Whole:` and the "
        "label rule's working instead, its probe targets follow the label rule too, and the "
        "length token says whether fewer than N items are shown.", ""]
  L += _steps_rows(by_group["steps"], default_steps) + [""]
  L += [f"## {plan_lib.GROUPS['pool']}", "",
        "PERSOMA-Pool is not in the papers: `persoma.models.set_pool.SetPoolAdapter` applies a "
        "2-layer MLP to each item, averages the results over the history (plus the item "
        "count) and maps the average to 8 soft-prompt tokens for any N "
        "(`gin/experiments/persoma_pool.gin`). The average can hold per-genre rating means, "
        "which the label rule uses, so the LM need not learn to aggregate N item tokens. "
        "The ratio-pooling variant (`gin/experiments/persoma_pool_ratio.gin`) adds 64 "
        "channels, each a gate-weighted mean of a per-item value with the log of its gate "
        "total, so a per-genre mean rating and count need no learned division. "
        "PERSOMA-GenreStats (`persoma.models.genre_stats.GenreStatsAdapter`, "
        "`gin/experiments/persoma_genre_stats.gin`) makes the statistics explicit: per-item "
        "heads give genre probabilities and a star distribution, their sum over the history "
        "is a soft per-genre rating histogram, and a per-genre MLP turns it into one "
        "soft-prompt token per genre (19). Its item heads are also trained item by item on "
        "the catalog's genres and the user's stars (an added loss, weight 1), a supervision "
        "the papers' adapters do not get. With genre-name anchors "
        "(`gin/experiments/persoma_genre_names.gin`) each genre's token also carries the mean "
        "T5 input embedding of the genre's name pieces. PERSOMA-MLP with item heads "
        "(`gin/experiments/persoma_mlp_items.gin`) keeps the MLP adapter's one token per item "
        "and adds the same item supervision through two linear heads on each token (genres, "
        "star; weight 1); the heads do not change the tokens the T5 reads. With rationale "
        "targets (`gin/experiments/persoma_mlp_rationale.gin`) every target also starts with "
        "the label rule's working on the shown items (`Shown: Action 4.18, Drama 4.33. "
        "Liked Genres: ...`), which the decoder writes before the labels; scoring reads only "
        "the labels. PERSOMA-GenreStats with genre-name anchors and rationale targets "
        "(`gin/experiments/persoma_genre_names_rationale.gin`) runs with `shown` labels at "
        "N=50 (also in group 7, for up to 3x the steps) and 100 (also for "
        f"{plan_lib.POOL_LONG_FACTOR}x the steps, from the shorter run's last checkpoint); "
        "PERSOMA-MLP with item heads and rationale targets runs with `shown` labels at N=50 "
        f"and 100, there also for {plan_lib.POOL_LONG_FACTOR}x and "
        f"{2 * plan_lib.POOL_LONG_FACTOR}x the steps. Group 7's PERSOMA-GenreStats with "
        "length and rank features runs at N=5, 10 and 100 on `shown` labels from the rule "
        "tuned at that N (`plan.TUNED_RULE_BINDINGS`; at N=5 the best rule a `LabelConfig` "
        f"can hold), at N=10 and 100 also for {plan_lib.POOL_LONG_FACTOR}x the steps. "
        "PERSOMA-MLP rows of the same configuration are repeated for comparison.", ""]
  pairs = sorted(by_group["pool"], key=lambda r: (  # each pool row below its MLP twin
      r["history_size"], _index(plan_lib.RESAMPLE_LABELS, r.get("resample_labels") or "history"),
      plan_lib.method_order(r["method"])))
  L += _prf_rows([dict(r, n_labels=_pool_cell(r, default_steps)) for r in pairs],
                 "n_labels", "N, train labels") + [""]
  L += [f"## {plan_lib.GROUPS['seeds']}", ""] + seeds.seeds_table(results) + [""]
  added_seeds = seeds.added_seeds_table(results)
  L += added_seeds + ([""] if added_seeds else [])
  if by_group["continued"]:
    L += [f"## {plan_lib.GROUPS['continued']}", "",
          f"Seed {plan_lib.CONTINUED_SEED_OFFSET}'s run of "
          f"`gin/experiments/{plan_lib.GIN_FILES[plan_lib.CONTINUED_METHOD]}` for "
          f"{plan_lib.CONTINUED_FROM_FACTOR}x the steps had its best validation F1 at its "
          "last step. Both rows continue it from that checkpoint (params, optimiser state, "
          f"step and data order) to {plan_lib.CONTINUED_FACTOR}x the steps: on its own "
          "targets, and with each rationale genre's shown movie count written before its "
          "mean (`gin/experiments/persoma_mlp_rationale_tuned_probe_whole_counts.gin`, "
          "`Shown: Action 4 3.75, ...`; a persoma addition), the counts by which the rule "
          "ranks equal means, so the rationale readout applies the rule to everything it "
          "uses. The second picks its best step among its own validations only.", ""]
    L += _steps_rows(by_group["continued"], default_steps) + [""]
  L += ensembles.ensembles_section(results)
  L += marginals_table.marginals_section(results)
  L += readout_table.readout_section(results)
  L += ["## Runs", "", "| Run id | Model | Params (trainable / total) | Steps trained | "
        "Best step | Wall time | Attempts |", "|---|---|---|---|---|---|---|"]
  for r in results:
    if r["kind"] == "cost":
      continue
    pt, pa = r.get("params_trainable"), r.get("params_total")
    params = f"{pt:,} / {pa:,}" if isinstance(pt, int) and isinstance(pa, int) else "–"
    model = ((r.get("model_size") or meta.get("model_size")) if r["kind"] == "train" else
             f"none (reads {len(r['members'])} runs)" if r["kind"] == "ensemble"
             else "none (baseline)")
    L.append(f"| `{r['run_id']}` | {model} | {params} | {r.get('steps_trained') or '–'} | "
             f"{r.get('best_step') or '–'} | {_secs(r.get('wall_secs'))} | "
             f"{r.get('attempts', '–')}{' ‡' if r.get('recovered_from') else ''} |")
  total = sum(float(r.get("wall_secs") or 0) for r in results)
  L += ["", f"Total wall time of the finished runs: {_secs(total)}.", ""]
  recovered = sorted({r["recovered_from"] for r in results if r.get("recovered_from")})
  if recovered:
    L += ["‡ Figures recovered from " + "; ".join(recovered) + ": the work dir that held these "
          "runs (checkpoints, logs, result JSONs) was lost with its machine before the ledger "
          "(`benchmarks/repro/ledger/`) existed. Their figures are those the page printed then, "
          "to its rounding (4 decimals for F1 / precision / recall, 3 for step seconds, whole "
          "minutes for wall times over an hour); per-side F1 is not available for them. For "
          "re-runs of these configurations on a later machine see Notes, \"Re-running the "
          "recovered runs\".", ""]
  notes = Path(__file__).with_name("NOTES.md")
  if notes.exists():
    L += ["## Notes (hand-written, benchmarks/repro/NOTES.md)", "", notes.read_text().strip(), ""]
  if missing:
    L += ["## Not finished or skipped", "", "| Run id | Status | Detail |", "|---|---|---|"]
    L += [f"| `{rid}` | {st} | {det} |" for rid, st, det in missing]
    L += [""]
  return "\n".join(L)


def _f1_matrix(rows: Sequence[Mapping[str, Any]]) -> list[str]:
  methods = sorted({r["method"] for r in rows}, key=plan_lib.method_order)
  if not methods:
    return []
  ns = plan_lib.HISTORY_SIZES
  out = ["F1 by history size:", "", "| Method | " + " | ".join(f"N={n}" for n in ns) + " |",
         "|---|" + "---|" * len(ns)]
  f1 = {(r["method"], r["history_size"]): r["f1"] for r in rows}
  for m in methods:
    out.append(f"| {plan_lib.METHOD_LABELS.get(m, m)} | " + " | ".join(
        _fmt(f1.get((m, n))) for n in ns) + " |")
  return out
