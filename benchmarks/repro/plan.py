"""The experiment plan of issue 5: every run as (gin file + bindings) under a stable run id.

A run is one of
  * ``train``: a `persoma-train` run of a gin file under ``gin/experiments/`` plus ``--gin.``
    bindings (history size, sampler, format, mode, initial checkpoint, overrides);
  * ``baseline``: a `persoma.baselines` evaluation (counting / rule) on the same test users and
    sampled histories;
  * ``cost``: the input-cost measurement of the paper's Table 2 (encoder tokens per example and
    the train-step time of one method at one N).

Run ids are derived from what a run is (method, N, sampler, format, mode, base), never from its
position in the plan, so a run shared by several groups (e.g. PERSOMA-MLP at N=50, recency, uem)
is planned, trained and stored once. The fingerprint hashes everything that changes the numbers
(the gin file's text, the bindings, the base run), so a finished result is only reused for the
same configuration.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
GIN_DIR = REPO / "gin" / "experiments"

GROUPS: dict[str, str] = {
    "history": "1. History size N (recency sampling, uem format)",
    "samplers": "2. Sampling strategies (N = 50)",
    "formats": "3. Item formats (N = 10)",
    "modes": "4. Training modes for PERSOMA-MLP (N = 50) on a task-adapted base",
    "cost": "5. Input cost (the paper's Table 2)",
    "labels": "6. Labels of the augmented train histories (a persoma addition; PERSOMA-MLP, N = 50)",
    "steps": "7. Longer training (a persoma addition; PERSOMA-MLP and PERSOMA-GenreStats with "
             "genre-name anchors, N = 50)",
    "pool": "8. A set-pooling adapter (a persoma addition; recency sampling, uem format)",
}
HISTORY_SIZES = (5, 10, 50, 100)
TEXT_HISTORY_SIZES = (5, 10, 50)
SAMPLERS = ("recency", "random", "long_tail", "topk_popularity", "genre")
FORMATS = ("uem", "complete", "title_score", "description_score")
EMBEDDING_METHODS = ("uem", "persoma_mlp", "persoma_transformer", "persoma_perceiver")
BASELINES = ("counting", "rule", "all")
COST_METHODS = ("textprompt", "persoma_mlp", "persoma_perceiver")
LORA_RANK = 4
RESAMPLE_LABELS = ("history", "window", "shown")  # persoma.data.examples.RESAMPLE_LABELS
RESAMPLE_LABELS_BINDING = "data_config.PersomaDataConfig.train_resample_labels"
LABELS_MORE_RESAMPLES = 16  # group 6 also runs window labels with this many histories per user
# Group 7 trains PERSOMA-MLP at N=50 for these multiples of the program's TRAIN_STEPS, per
# label source (in run order); each longer run continues the next shorter one of its labels.
LONG_TRAIN_FACTORS: dict[str, tuple[int, ...]] = {"shown": (3, 6), "history": (3,)}
LONG_TRAIN_LABELS = tuple(LONG_TRAIN_FACTORS)
# ... and per method (session 11 added the genre-statistics adapter with genre-name anchors,
# whose N=50 run was still improving at its last step).
LONG_TRAIN_METHODS: dict[str, dict[str, tuple[int, ...]]] = {
    "persoma_mlp": LONG_TRAIN_FACTORS,
    "persoma_genre_names": {"history": (3,), "shown": (3,)},
}
# Schedules whose learning rate at a step does not depend on TRAIN_STEPS: a longer run follows
# the shorter run's trajectory exactly, so it may start from the shorter run's last checkpoint.
BUDGET_FREE_SCHEDULES = ("constant", "warmup_constant", "rsqrt")
# bindings that do not change the numbers: where the data is, and how often a run saves (its
# resume is exact from any checkpoint, `tests/test_resume.py`)
NOT_IDENTITY = ("DATA_DIR", "SAVE_EVERY_STEPS")
# The task-adapted base of group 4: text prompting at N = 10 in the title_score format. Its
# encoder input is 159 tokens on average (uem: 942), so it trains within one session; the uem
# base needed about 15 core-hours and was lost twice with the machine (sessions 3 and 9).
BASE_N = 10
BASE_FMT = "title_score"

METHOD_LABELS: dict[str, str] = {
    "counting": "Counting baseline",
    "rule": "Rule baseline (label rule on shown history)",
    "all": "All 38 classes (no personalisation)",
    "textprompt": "Text prompting",
    "uem": "UEM",
    "persoma_mlp": "PERSOMA-MLP",
    "persoma_transformer": "PERSOMA-Transformer",
    "persoma_perceiver": "PERSOMA-Perceiver",
    "persoma_pool": "PERSOMA-Pool (persoma)",
    "persoma_pool_ratio": "PERSOMA-Pool, ratio pooling (persoma)",
    "persoma_genre_stats": "PERSOMA-GenreStats (persoma)",
    "persoma_genre_names": "PERSOMA-GenreStats, genre-name anchors (persoma)",
}


def method_order(method: str) -> int:
  """Sort key of a method on the results page: its place in METHOD_LABELS (unknown last)."""
  return list(METHOD_LABELS).index(method) if method in METHOD_LABELS else len(METHOD_LABELS)

GIN_FILES: dict[str, str] = {
    "textprompt": "text_prompt.gin",
    "uem": "uem.gin",
    "persoma_mlp": "persoma_mlp.gin",
    "persoma_transformer": "persoma_transformer.gin",
    "persoma_perceiver": "persoma_perceiver.gin",
    "persoma_pool": "persoma_pool.gin",
    "persoma_pool_ratio": "persoma_pool_ratio.gin",
    "persoma_genre_stats": "persoma_genre_stats.gin",
    "persoma_genre_names": "persoma_genre_names.gin",
}
# Group 8: the set-pooling adapter at these N (program labels), and at POOL_SHOWN_N with `shown`
# labels, the best label source of group 6; N=50 first, the size of the target. The
# ratio-pooling variant (session 9) and the genre-statistics adapter (session 10) run at the
# same N.
POOL_HISTORY_SIZES = (50, 100, 10, 5)
POOL_METHODS = ("persoma_pool", "persoma_pool_ratio", "persoma_genre_stats",
                "persoma_genre_names")
POOL_SHOWN_N = 50


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the whole program runs on (flags of benchmarks/reproduce.py).

  Attributes:
    dataset: task dataset slug (`movielens_1m`; `synthetic` for smoke runs).
    data_dir: folder with `ml-1m/` and `descriptions/` (None for synthetic).
    work_dir: run directories, result JSONs, caches of measurements (never inside the repo).
    model_size, train_steps, eval_every, max_eval_examples, batch_size, encoder, patience:
      overrides of `gin/experiments/repro_common.gin` (None: the gin value).
    max_inputs_length: the longest encoder input (tokens) a text-prompting run may use; longer
      rendered histories are reported as not fitting instead of being truncated.
    seed: data and model seed (SEED and DATA_SEED).
    save_every: SAVE_EVERY_STEPS (None: the gin value, or eval_every when that is set); not
      part of a run's identity, so a run of many hours can save often without becoming another
      configuration.
  """

  dataset: str = "movielens_1m"
  data_dir: str | None = None
  work_dir: str = "~/persoma_repro"
  model_size: str | None = None
  train_steps: int | None = None
  eval_every: int | None = None
  max_eval_examples: int | None = None
  batch_size: int | None = None
  encoder: str | None = None
  patience: int | None = None
  max_inputs_length: int = 2048
  seed: int = 0
  cost_batch: int = 2
  save_every: int | None = None

  def overrides(self) -> dict[str, Any]:
    """gin macro bindings every train run gets (only the ones that are set)."""
    out: dict[str, Any] = {"DATA_DIR": self.data_dir}
    if self.dataset != "movielens_1m":
      out["DATASET"] = self.dataset
    for macro, value in (("MODEL_SIZE", self.model_size), ("TRAIN_STEPS", self.train_steps),
                         ("EVAL_EVERY_STEPS", self.eval_every),
                         ("SAVE_EVERY_STEPS", self.eval_every),
                         ("MAX_EVAL_EXAMPLES", self.max_eval_examples),
                         ("BATCH_SIZE", self.batch_size), ("ENCODER", self.encoder),
                         ("PATIENCE", self.patience)):
      if value is not None:
        out[macro] = value
    if self.save_every is not None:
      out["SAVE_EVERY_STEPS"] = self.save_every
    if self.seed:
      out["SEED"] = out["DATA_SEED"] = self.seed
    return out

  @property
  def dataset_name(self) -> str:
    """The `persoma.data.load_dataset` name."""
    return {"movielens_1m": "movielens/1m", "synthetic": "synthetic",
            "movielens_latest_small": "movielens/latest-small",
            "movielens_100k": "movielens/100k"}.get(self.dataset, self.dataset)


@dataclasses.dataclass(frozen=True)
class Run:
  """One planned run.

  Attributes:
    run_id: stable id (`persoma_mlp-h50-recency-uem-full`, `rule-h5-recency`, `cost-...`).
    kind: `train` | `baseline` | `cost`.
    method: key of METHOD_LABELS.
    groups: the plan groups (keys of GROUPS) that report this run.
    history_size, sampler, fmt: the task.
    mode: training mode (`full`, `lora`, `frozen`; '' for baselines / cost).
    init_from: run id whose best checkpoint initialises the T5 (the task-adapted base).
    resample_labels: what the augmented train histories are labelled from (`history`, the
      program's default, `window` or `shown`; see `persoma.data.build_examples`).
    train_resamples: histories per train user per epoch when it differs from the gin default
      (TRAIN_RESAMPLES in repro_common.gin); None: the default.
    train_steps: TRAIN_STEPS when it differs from the program's (group 7: a multiple of it from
      LONG_TRAIN_FACTORS; the run id says `-steps_x<factor>`); None: the program's.
    warm_from: run id of the same configuration with the next smaller step budget (the
      program's TRAIN_STEPS, or a smaller factor of group 7). Only set when
      the learning-rate schedule ignores the step budget: then the first steps of this run are
      that run's, and `benchmarks/reproduce.py` starts from its last checkpoint when it trained
      to the end (not part of the fingerprint: the numbers are the same either way).
    gin_file: path under the repo (train runs).
    bindings: sorted (macro, value) pairs passed as `--gin.MACRO=repr(value)`.
    skip_reason: why the run cannot run here (e.g. the rendered history does not fit).
    identity: extra (key, value) pairs that change the numbers but are not gin bindings
      (e.g. the batch of a cost measurement); part of the fingerprint.
  """

  run_id: str
  kind: str
  method: str
  groups: tuple[str, ...]
  history_size: int
  sampler: str = "recency"
  fmt: str = "uem"
  mode: str = ""
  init_from: str | None = None
  resample_labels: str = "history"
  train_resamples: int | None = None
  train_steps: int | None = None
  warm_from: str | None = None
  gin_file: str | None = None
  bindings: tuple[tuple[str, Any], ...] = ()
  skip_reason: str | None = None
  identity: tuple[tuple[str, Any], ...] = ()

  @property
  def label(self) -> str:
    return METHOD_LABELS.get(self.method, self.method)

  def gin_args(self) -> list[str]:
    """`--gin_file=...` and `--gin.MACRO=VALUE` flags (without MODEL_DIR)."""
    args = [f"--gin_file={self.gin_file}"] if self.gin_file else []
    return args + [f"--gin.{k}={gin_literal(v)}" for k, v in self.bindings]

  def fingerprint(self, base_fingerprint: str | None = None) -> str:
    """sha256 (16 hex) of the run's configuration: kind, method, task, bindings, gin text."""
    gin_text = gin_closure_text(self.gin_file) if self.gin_file else ""
    blob = json.dumps({
        "kind": self.kind, "method": self.method, "n": self.history_size,
        "sampler": self.sampler, "fmt": self.fmt, "mode": self.mode,
        "bindings": [[k, gin_literal(v)] for k, v in self.bindings if k not in NOT_IDENTITY],
        "gin": gin_text, "base": base_fingerprint,
        "identity": [[k, repr(v)] for k, v in self.identity]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def gin_closure_text(gin_file: str) -> str:
  """The text of `gin_file` (repo-relative) and of every file it includes, recursively, as
  resolved against `gin/` (so an edit to a shared included file changes the fingerprint)."""
  seen: set[Path] = set()
  parts: list[str] = []

  def visit(path: Path) -> None:
    if path in seen:
      return
    seen.add(path)
    if not path.exists():
      parts.append(f"<missing {path.relative_to(REPO) if REPO in path.parents else path}>")
      return
    text = path.read_text()
    parts.append(text)
    for inc in re.findall(r"^include\s+['\"]([^'\"]+)['\"]", text, re.M):
      visit(REPO / "gin" / inc)

  visit(REPO / gin_file)
  return "\n".join(parts)


def gin_default(name: str, files=("gin/experiments/repro_common.gin", "gin/runs/train.gin")):
  """A macro's value in the reproduction's gin files (first file that sets it)."""
  for f in files:
    m = re.search(rf"^{name}\s*=\s*(.+)$", (REPO / f).read_text(), re.M)
    if m:
      return m.group(1).strip().strip("'")
  return None


def gin_literal(value: Any) -> str:
  """A Python value as a gin literal (`'text'`, `None`, `True`, `12`, `1e-3`)."""
  if isinstance(value, (str, bool, int, float, type(None), tuple, list)):
    return repr(value)
  raise TypeError(f"cannot bind {value!r} ({type(value).__name__}) in gin")


def inputs_length_for(max_tokens: int) -> int:
  """The text-prompt INPUTS_LENGTH covering `max_tokens` (EOS included), in steps of 64."""
  return int(math.ceil(max_tokens / 64.0) * 64)


def train_id(method: str, n: int, sampler: str, fmt: str, mode: str = "full",
             init_from: str | None = None, resample_labels: str = "history",
             train_resamples: int | None = None, steps_factor: int | None = None) -> str:
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
  return rid


def base_run_id() -> str:
  return train_id("textprompt", BASE_N, "recency", BASE_FMT)


TextTokens = Callable[[int, str], int]


def build_plan(settings: Settings, text_tokens: TextTokens | Mapping[tuple[int, str], int],
               instruction_tokens: int | None = None) -> list[Run]:
  """Every run of the five groups, deduplicated by run id (groups merged), in run order.

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
            steps_factor: int | None = None, warm_factor: int | None = None) -> None:
    """Adds a train run; `warm_factor`: the step factor of the shorter run a longer one
    continues (None: the program's budget)."""
    b = dict(common, HISTORY_SIZE=n, SAMPLER=sampler, FORMAT=fmt)
    warm_from = train_steps = None
    if steps_factor is not None:
      b["TRAIN_STEPS"] = train_steps = steps_factor * base_steps
      if gin_default("SCHEDULE") in BUDGET_FREE_SCHEDULES:
        warm_from = train_id(method, n, sampler, fmt, mode, init_from, resample_labels,
                             train_resamples, warm_factor)
    if resample_labels != "history":
      b[RESAMPLE_LABELS_BINDING] = resample_labels
    if train_resamples is not None:
      b["TRAIN_RESAMPLES"] = train_resamples
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
                     steps_factor),
            "train", method, (group,), n, sampler, fmt, mode, init_from, resample_labels,
            train_resamples, train_steps, warm_from, f"gin/experiments/{GIN_FILES[method]}",
            tuple(sorted(b.items())), skip))

  def baseline(method: str, group: str, n: int, sampler: str = "recency") -> None:
    add(Run(f"{method}-h{n}-{sampler}", "baseline", method, (group,), n, sampler, "",
            bindings=tuple(sorted({"DATASET": settings.dataset, "DATA_DIR": settings.data_dir,
                                   "SEED": settings.seed}.items()))))

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
  # bases first so dependants can start in the same invocation
  order = {base: 0}
  return sorted(runs.values(), key=lambda r: (order.get(r.run_id, 1),
                                              {"baseline": 0, "train": 1, "cost": 2}[r.kind]))


def select(runs: Sequence[Run], only: Iterable[str] | None) -> list[Run]:
  """Runs matching any of `only` (group names, run ids or fnmatch patterns of run ids).

  A selected run that depends on a base pulls the base in too. Raises ValueError naming an
  entry that matches nothing.
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
  for rid in list(chosen):
    base = by_id[rid].init_from
    if base:
      chosen.add(base)
  return [r for r in runs if r.run_id in chosen]
