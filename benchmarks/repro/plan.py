"""The experiment plan of issue 5: every run as (gin file + bindings) under a stable run id.

A run is one of
  * ``train``: a `persoma-train` run of a gin file under ``gin/experiments/`` plus ``--gin.``
    bindings (history size, sampler, format, mode, initial checkpoint, overrides);
  * ``baseline``: a `persoma.baselines` evaluation (counting / rule) on the same test users and
    sampled histories;
  * ``cost``: the input-cost measurement of the paper's Table 2 (encoder tokens per example and
    the train-step time of one method at one N);
  * ``ensemble``: several finished train runs read as one per user (repro.ensembles).

Run ids are derived from what a run is (method, N, sampler, format, mode, base), never from its
position in the plan, so a run shared by several groups (e.g. PERSOMA-MLP at N=50, recency, uem)
is planned, trained and stored once. The fingerprint hashes everything that changes the numbers
(the gin file's text, the bindings, the base run), so a finished result is only reused for the
same configuration.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

from persoma import tuned_rule
from repro.methods import (  # noqa: F401  (re-exported: plan.GIN_FILES, ...)
    ADDED_METHODS, BASELINES, BASE_FMT, BASE_N, BEST_ADDED, BEST_ADDED_BUDGETS, BEST_ADDED_LABELS,
    BUDGET_FREE_SCHEDULES, CONTINUED_BY, CONTINUED_FACTOR, CONTINUED_FROM_FACTOR,
    CONTINUED_METHOD, CONTINUED_SEED_OFFSET, COST_METHODS, DECODES_NOUN, EMBEDDING_METHODS,
    ENSEMBLES, ENSEMBLE_LABELS, ENSEMBLE_N, FORMATS, GIN_FILES,
    GROUPS, HISTORY_SIZES, LABELS_MORE_RESAMPLES, LONG_TRAIN_FACTORS, LONG_TRAIN_LABELS,
    LONG_TRAIN_METHODS, LORA_RANK, POOL_HISTORY_SIZES, POOL_LONG_FACTOR, POOL_METHODS,
    POOL_SHOWN_N, RATIONALE_METHODS, RATIONALE_TARGETS_LENGTH, RESAMPLE_LABELS,
    RESAMPLE_LABELS_BINDING, SAMPLERS, SEEDED_ADDITIONS, SEED_OFFSETS, TEXT_HISTORY_SIZES,
    TUNED_METHODS, TUNED_RULE_BINDINGS)
from repro.spec import (  # noqa: F401  (re-exported: plan.Settings, plan.Run, ...)
    METHOD_LABELS, NOT_IDENTITY, REPO, Run, Settings, gin_closure_text, gin_default, gin_literal,
    method_order)

GIN_DIR = REPO / "gin" / "experiments"


def inputs_length_for(max_tokens: int) -> int:
  """The text-prompt INPUTS_LENGTH covering `max_tokens` (EOS included), in steps of 64."""
  return int(math.ceil(max_tokens / 64.0) * 64)


SEED_TAG = "-seed"  # train_id's last part, before the seed, for a run with its own seed


def train_id(method: str, n: int, sampler: str, fmt: str, mode: str = "full",
             init_from: str | None = None, resample_labels: str = "history",
             train_resamples: int | None = None, steps_factor: int | None = None,
             seed: int | None = None) -> str:
  mode_tag = f"lora{LORA_RANK}" if mode == "lora" else mode
  rid = f"{method}-h{n}-{sampler}-{fmt}-{mode_tag}"
  if init_from:  # e.g. -on-textprompt_h10_title_score (the base's format, unless uem)
    base_method, base_n, _, base_fmt = init_from.split("-")[:4]
    rid += f"-on-{base_method}_{base_n}" + ("" if base_fmt == "uem" else f"_{base_fmt}")
  if resample_labels != "history":
    rid += f"-relabel_{resample_labels}"
  if train_resamples is not None:
    rid += f"-k{train_resamples}"
  if steps_factor is not None:
    rid += f"-steps_x{steps_factor}"
  if seed is not None:
    rid += f"{SEED_TAG}{seed}"
  return rid


def program_seed_id(run_id: str) -> str:
  """The run id of the same configuration with the program's seed: `run_id` without
  train_id's seed suffix (unchanged when it has none)."""
  head, sep, tail = run_id.rpartition(SEED_TAG)
  return head if sep and tail.isdigit() else run_id


def base_run_id() -> str:
  return train_id("textprompt", BASE_N, "recency", BASE_FMT)


TextTokens = Callable[[int, str], int]


def build_plan(settings: Settings, text_tokens: TextTokens | Mapping[tuple[int, str], int],
               instruction_tokens: int | None = None) -> list[Run]:
  """Every run of the eleven groups, deduplicated by run id (groups merged), in run order.

  Args:
    settings: the program settings.
    text_tokens: (N, fmt) -> the longest rendered text-prompt input of that task, in tokens of
      the run's vocabulary (EOS included): decides INPUTS_LENGTH and whether N fits.
    instruction_tokens: tokens of the task instruction X + EOS; the embedding methods get
      INPUTS_LENGTH = that rounded up to a multiple of 8 (None: the gin default).
  """
  embed_length = None if instruction_tokens is None else int(
      math.ceil(instruction_tokens / 8.0) * 8)
  if isinstance(text_tokens, Mapping):
    table = dict(text_tokens)
    text_tokens = lambda n, fmt: table[(n, fmt)]  # noqa: E731
  common = settings.overrides()
  base_steps = int(settings.train_steps or gin_default("TRAIN_STEPS"))
  runs: dict[str, Run] = {}

  def add(run: Run) -> None:
    if run.run_id in runs:
      old = runs[run.run_id]
      groups = old.groups + tuple(g for g in run.groups if g not in old.groups)
      runs[run.run_id] = dataclasses.replace(old, groups=groups)
    else:
      runs[run.run_id] = run

  def train(method: str, group: str, n: int, sampler: str = "recency", fmt: str = "uem",
            mode: str = "full", init_from: str | None = None,
            resample_labels: str = "history", train_resamples: int | None = None,
            steps_factor: int | None = None, warm_factor: int | None = None,
            seed: int | None = None, warm_method: str | None = None) -> None:
    """Adds a train run; `warm_factor`: the step factor of the shorter run a longer one
    continues (None: the program's budget); `warm_method`: that run's method (None: the
    same; another method continues its params and optimiser state on its own targets,
    which is part of the run's identity); `seed`: SEED and DATA_SEED (None: the
    program's)."""
    b = dict(common, HISTORY_SIZE=n, SAMPLER=sampler, FORMAT=fmt)
    if seed is not None:
      b["SEED"] = b["DATA_SEED"] = seed
    warm_from = train_steps = None
    identity: tuple[tuple[str, Any], ...] = ()
    if steps_factor is not None:
      b["TRAIN_STEPS"] = train_steps = steps_factor * base_steps
      if gin_default("SCHEDULE") in BUDGET_FREE_SCHEDULES:
        warm_from = train_id(warm_method or method, n, sampler, fmt, mode, init_from,
                             resample_labels, train_resamples, warm_factor, seed)
    if warm_method not in (None, method):
      if warm_from is None:
        raise ValueError(f"{method} continues {warm_method}, which needs steps_factor and a "
                         "schedule in BUDGET_FREE_SCHEDULES")
      identity = (("continues", warm_from),)
    if resample_labels != "history":
      b[RESAMPLE_LABELS_BINDING] = resample_labels
    if train_resamples is not None:
      b["TRAIN_RESAMPLES"] = train_resamples
    if method in RATIONALE_METHODS and n in RATIONALE_TARGETS_LENGTH:
      b["TARGETS_LENGTH"] = RATIONALE_TARGETS_LENGTH[n]
    if method in TUNED_METHODS and n != POOL_SHOWN_N:
      if n not in TUNED_RULE_BINDINGS:
        raise ValueError(f"{method} at N={n}: no tuned rule in plan.TUNED_RULE_BINDINGS")
      b.update(TUNED_RULE_BINDINGS[n])
    skip = None
    if method == "textprompt":
      tokens = int(text_tokens(n, fmt))
      length = inputs_length_for(tokens)
      if length > settings.max_inputs_length:
        skip = (f"the rendered history needs up to {tokens} tokens, over the "
                f"{settings.max_inputs_length}-token input limit of this program")
      b["INPUTS_LENGTH"] = length
    elif embed_length is not None:
      b["INPUTS_LENGTH"] = embed_length
    if mode != "full":
      b["TRAINING_MODE"] = mode
      b["LORA_RANK"] = LORA_RANK if mode == "lora" else 0
    add(Run(train_id(method, n, sampler, fmt, mode, init_from, resample_labels, train_resamples,
                     steps_factor, seed),
            "train", method, (group,), n, sampler, fmt, mode, init_from, resample_labels,
            train_resamples, train_steps, warm_from, f"gin/experiments/{GIN_FILES[method]}",
            tuple(sorted(b.items())), skip, identity))

  def baseline(method: str, group: str, n: int, sampler: str = "recency") -> None:
    add(Run(f"{method}-h{n}-{sampler}", "baseline", method, (group,), n, sampler, "",
            bindings=tuple(sorted({"DATASET": settings.dataset, "DATA_DIR": settings.data_dir,
                                   "SEED": settings.seed}.items())),
            identity=(("grid", tuned_rule.Grid().key()),) if method == "rule_tuned" else ()))

  # 1. history size
  for n in HISTORY_SIZES:
    for m in BASELINES:
      baseline(m, "history", n)
    if n in TEXT_HISTORY_SIZES:
      train("textprompt", "history", n)
    for m in EMBEDDING_METHODS:
      train(m, "history", n)
  # 2. samplers
  for s in SAMPLERS:
    train("persoma_mlp", "samplers", 50, s)
    for m in BASELINES:
      baseline(m, "samplers", 50, s)
  # 3. item formats
  for f in FORMATS:
    train("persoma_mlp", "formats", 10, fmt=f)
    train("textprompt", "formats", 10, fmt=f)
  # 4. training modes on the task-adapted base (+ the from-scratch full run for reference)
  base = base_run_id()
  train("textprompt", "modes", BASE_N, fmt=BASE_FMT)
  train("persoma_mlp", "modes", 50)
  for mode in ("full", "lora", "frozen"):
    train("persoma_mlp", "modes", 50, mode=mode, init_from=base)
  # 5. input cost
  def cost(m: str, n: int, fmt: str = "uem") -> None:
    b = dict(common, HISTORY_SIZE=n, **({} if fmt == "uem" else {"FORMAT": fmt}))
    if m != "textprompt" and embed_length is not None:
      b["INPUTS_LENGTH"] = embed_length
    add(Run(f"cost-{m}-h{n}" + ("" if fmt == "uem" else f"-{fmt}"), "cost", m, ("cost",), n,
            "recency", fmt, gin_file=f"gin/experiments/{GIN_FILES[m]}",
            bindings=tuple(sorted(b.items())),
            identity=(("cost_batch", settings.cost_batch),
                      ("max_inputs_length", settings.max_inputs_length))))

  for n in HISTORY_SIZES:
    for m in COST_METHODS:
      cost(m, n)
  for fmt in FORMATS[1:]:  # the N=10 target is judged within one item format
    for m in ("textprompt", "persoma_mlp"):
      cost(m, BASE_N, fmt)
  # 6. labels of the augmented train histories (+ the program's default, whole-history labels)
  for labels in RESAMPLE_LABELS:
    train("persoma_mlp", "labels", 50, resample_labels=labels)
  train("persoma_mlp", "labels", 50, resample_labels="window",
        train_resamples=LABELS_MORE_RESAMPLES)
  # 7. longer training (+ the same runs at the program's step budget)
  for method, by_labels in LONG_TRAIN_METHODS.items():
    for labels, factors in by_labels.items():
      train(method, "steps", 50, resample_labels=labels)
      for shorter, factor in zip((None,) + factors, factors):
        train(method, "steps", 50, resample_labels=labels, steps_factor=factor,
              warm_factor=shorter)
  baseline("rule", "labels", 50)
  # 8. the set-pooling adapter (+ the MLP rows it is compared with)
  for n in POOL_HISTORY_SIZES:
    for m in POOL_METHODS:
      train(m, "pool", n)
    train("persoma_mlp", "pool", n)
  train("persoma_pool", "pool", POOL_SHOWN_N, resample_labels="shown")
  train("persoma_genre_names", "pool", POOL_SHOWN_N, resample_labels="shown")
  # session 14: the label the probes of session 10 preferred (`window`, 0.557 over 3 seeds)
  train("persoma_genre_names", "pool", POOL_SHOWN_N, resample_labels="window")
  for n in POOL_HISTORY_SIZES:  # session 11: shown labels lift it at N=50 (0.451 -> 0.500)
    train("persoma_genre_names", "pool", n, resample_labels="shown")
  train("persoma_mlp", "pool", POOL_SHOWN_N, resample_labels="shown")
  train("persoma_mlp_items", "pool", POOL_SHOWN_N, resample_labels="shown")
  train("persoma_mlp_rationale", "pool", POOL_SHOWN_N, resample_labels="shown")
  # session 27: the best adapter with rationale targets, `shown` labels, at N=50 (also group 7)
  # and N=100, where the rule leads by most
  for n in (POOL_SHOWN_N, 100):
    train("persoma_genre_names_rationale", "pool", n, resample_labels="shown")
  # session 28: its N=100 validation F1 still rose at the last step; 3x the steps there too;
  # session 29: PERSOMA-MLP with rationale targets the same way (shown labels, N=100, 1x and 3x)
  train("persoma_genre_names_rationale", "pool", 100, resample_labels="shown",
        steps_factor=POOL_LONG_FACTOR)
  train("persoma_mlp_rationale", "pool", 100, resample_labels="shown")
  # session 36: the rank features at N=100 too, with the rule tuned there (1x and 3x the steps;
  # the 1x run's validation F1 still rose at its last step)
  train("persoma_genre_names_tuned_rank", "pool", 100, resample_labels="shown")
  train("persoma_genre_names_tuned_rank", "pool", 100, resample_labels="shown",
        steps_factor=POOL_LONG_FACTOR)
  # session 39: the rank features at N=5 and 10 too, with the rule tuned there, so the best
  # addition runs at every N
  for n in (10, 5):
    train("persoma_genre_names_tuned_rank", "pool", n, resample_labels="shown")
  # ... and 3x the steps at N=10, whose validation F1 still rose at the last step
  train("persoma_genre_names_tuned_rank", "pool", 10, resample_labels="shown",
        steps_factor=POOL_LONG_FACTOR)
  train("persoma_mlp_rationale", "pool", 100, resample_labels="shown",
        steps_factor=POOL_LONG_FACTOR)
  # its validation F1 was best at its last step: twice as long again, from that run
  train("persoma_mlp_rationale", "pool", 100, resample_labels="shown",
        steps_factor=2 * POOL_LONG_FACTOR, warm_factor=POOL_LONG_FACTOR)
  # 9. seed spread of group 1's embedding runs
  for offset in SEED_OFFSETS:
    for n in HISTORY_SIZES:
      for m in EMBEDDING_METHODS:
        train(m, "seeds", n, seed=settings.seed + offset)
  # session 30: the best addition at N=50 (group 7's run and the shorter run it continues);
  # session 31: and at N=100, where the rule leads by most (group 8's 1x and 3x runs)
  # session 34: and the tuned-label run at N=50 (group 7's 1x and 3x runs)
  for method, labels, budgets in SEEDED_ADDITIONS:
    for n, factors in budgets.items():
      for offset in SEED_OFFSETS:
        for factor in factors:
          train(method, "seeds", n, resample_labels=labels, steps_factor=factor,
                seed=settings.seed + offset)
  # 10. (session 48) continuations of seed 2's 3x run of PERSOMA-MLP's best family
  for method in CONTINUED_BY:
    train(method, "continued", POOL_SHOWN_N, resample_labels="shown",
          steps_factor=CONTINUED_FACTOR, warm_factor=CONTINUED_FROM_FACTOR,
          seed=settings.seed + CONTINUED_SEED_OFFSET, warm_method=CONTINUED_METHOD)
  # 11. (session 50) ensembles of those runs, read as one
  for tag, members in ENSEMBLES.items():
    ids = tuple(train_id(m, ENSEMBLE_N, "recency", "uem", resample_labels=ENSEMBLE_LABELS,
                         steps_factor=f, seed=None if off is None else settings.seed + off)
                for m, f, off in members)
    if unplanned := [i for i in ids if i not in runs]:
      raise ValueError(f"ensemble {tag}: members {unplanned} are not planned runs")
    method = members[0][0]
    readout = ("rationale" if all(m in RATIONALE_METHODS for m, _, _ in members)
               else "stated")
    add(Run(ensemble_id(method, ENSEMBLE_N, tag), "ensemble", method, ("ensembles",),
            ENSEMBLE_N, resample_labels=ENSEMBLE_LABELS, members=ids,
            identity=(("members", ids), ("readout", readout))))
  # bases first so dependants can start in the same invocation; ensembles after their members
  order = {base: 0}
  return sorted(runs.values(), key=lambda r: (
      order.get(r.run_id, 1), {"baseline": 0, "train": 1, "cost": 2, "ensemble": 3}[r.kind]))


def ensemble_id(method: str, n: int, tag: str) -> str:
  """`ensemble-<method>-h<n>-<tag>`: a group-11 ensemble (its members are in the run)."""
  return f"ensemble-{method}-h{n}-{tag}"


def select(runs: Sequence[Run], only: Iterable[str] | None) -> list[Run]:
  """Runs matching any of `only` (group names, run ids or fnmatch patterns of run ids).

  A selected run that depends on a base pulls the base in too; an ensemble, its members.
  Raises ValueError naming an entry that matches nothing.
  """
  if not only:
    return list(runs)
  by_id = {r.run_id: r for r in runs}
  chosen: set[str] = set()
  for item in only:
    hit = {r.run_id for r in runs if item in r.groups or r.run_id == item
           or fnmatch.fnmatchcase(r.run_id, item)}
    if not hit:
      raise ValueError(f"--only {item!r} matches no group or run id; groups: "
                       f"{', '.join(GROUPS)}; see --list for run ids")
    chosen |= hit
  for rid in list(chosen):  # (a member's own base, if it had one, is not pulled in)
    chosen.update(by_id[rid].sources)
  return [r for r in runs if r.run_id in chosen]
