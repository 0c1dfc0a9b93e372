"""What one run of the reproduction is: the program's settings, a planned run and its
fingerprint, and the gin helpers both use.

`repro.plan` builds the list of runs from these; everything here is re-exported there, so
`plan.Settings`, `plan.Run` and `plan.gin_default` keep working.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# bindings that do not change the numbers: where the data is, and how often a run saves (its
# resume is exact from any checkpoint, `tests/test_resume.py`)
NOT_IDENTITY = ("DATA_DIR", "SAVE_EVERY_STEPS")

METHOD_LABELS: dict[str, str] = {
    "counting": "Counting baseline",
    "rule": "Rule baseline (label rule on shown history)",
    "rule_tuned": "Tuned rule baseline (label rule fitted on the train users; persoma)",
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
    "persoma_mlp_items": "PERSOMA-MLP, item heads (persoma)",
    "persoma_mlp_rationale": "PERSOMA-MLP, item heads, rationale targets (persoma)",
    "persoma_mlp_rationale_ranked": "PERSOMA-MLP, item heads, ranked rationale targets (persoma)",
    "persoma_mlp_rationale_tuned":
        "PERSOMA-MLP, item heads, rationale targets, tuned-rule labels (persoma)",
    "persoma_mlp_rationale_tuned_len":
        "PERSOMA-MLP, item heads, rationale targets, tuned-rule labels, length token (persoma)",
    "persoma_mlp_rationale_tuned_probe":
        "PERSOMA-MLP, item heads, rationale targets, tuned-rule labels, genre probe (persoma)",
    "persoma_mlp_rationale_tuned_probe_whole":
        "PERSOMA-MLP, item heads, per-row-rule rationale and genre probe, length token "
        "(persoma)",
    "persoma_mlp_rationale_tuned_probe_whole_counts":
        "PERSOMA-MLP, item heads, per-row-rule rationale with counts and genre probe, length "
        "token (persoma)",
    "persoma_genre_names_rationale":
        "PERSOMA-GenreStats, genre-name anchors, rationale targets (persoma)",
    "persoma_genre_names_tuned":
        "PERSOMA-GenreStats, genre-name anchors, rationale, tuned-rule labels (persoma)",
    "persoma_genre_names_tuned_len":
        "PERSOMA-GenreStats, anchors, rationale, tuned-rule labels, length features (persoma)",
    "persoma_genre_names_tuned_rank":
        "PERSOMA-GenreStats, anchors, rationale, tuned-rule labels, length and rank features "
        "(persoma)",
}


def method_order(method: str) -> int:
  """Sort key of a method on the results page: its place in METHOD_LABELS (unknown last)."""
  return list(METHOD_LABELS).index(method) if method in METHOD_LABELS else len(METHOD_LABELS)


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
    kind: `train` | `baseline` | `cost` | `ensemble`.
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
    members: run ids an ensemble reads as one (group 11; they run first, and their
      fingerprints are its base fingerprint); () for every other kind.
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
  members: tuple[str, ...] = ()

  @property
  def label(self) -> str:
    return METHOD_LABELS.get(self.method, self.method)

  @property
  def sources(self) -> tuple[str, ...]:
    """The runs whose results this run needs before it can run: its base, or its members."""
    return (self.init_from,) if self.init_from else self.members

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
