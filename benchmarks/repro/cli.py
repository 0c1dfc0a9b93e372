"""The command line of benchmarks/reproduce.py: its flags, their checks and what they select.

`parse_args` takes the program's docstring for `--help`; `settings_of` turns the flags into the
plan's `Settings`; `docs_dir_for` decides whether a run may rewrite the published page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from repro import plan as plan_lib

REPO = plan_lib.REPO
DEFAULT_DATA = REPO.parent / "shared" / "movielens"
DEFAULT_WORK = "~/persoma_repro"
DEFAULT_LEDGER = REPO / "benchmarks" / "repro" / "ledger"


def parse_args(argv=None, doc: str = "") -> argparse.Namespace:
  """The flags of `argv` (None: sys.argv), checked; `doc`: the program's docstring for --help."""
  p = argparse.ArgumentParser(description=doc.split("\n")[0], epilog=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data_dir", default=str(DEFAULT_DATA),
                 help="folder holding ml-1m/ and descriptions/ (default ../shared/movielens)")
  p.add_argument("--work_dir", default=DEFAULT_WORK,
                 help="runs, results and caches (never inside the repository)")
  p.add_argument("--dataset", default="movielens_1m",
                 help="task dataset slug: movielens_1m (the program) or synthetic (smoke run)")
  p.add_argument("--only", action="append", default=[],
                 help=f"group ({'|'.join(plan_lib.GROUPS)}), run id or fnmatch pattern; "
                 "repeatable or comma-separated")
  p.add_argument("--list", action="store_true", help="print the plan with run ids and status")
  p.add_argument("--dry_run", action="store_true", help="print what would run, run nothing")
  p.add_argument("--plot_only", action="store_true",
                 help="only regenerate results.json, RESULTS.md and the plot")
  p.add_argument("--budget", action="store_true",
                 help="measure one train step per run configuration and project wall time")
  p.add_argument("--max_steps", type=int, help="TRAIN_STEPS override (smoke runs)")
  p.add_argument("--eval_every", type=int, help="EVAL_EVERY_STEPS (and SAVE_EVERY_STEPS)")
  p.add_argument("--save_every", type=int,
                 help="SAVE_EVERY_STEPS: save more often (a run of many hours on a machine that "
                 "may stop); the figures and the run's identity do not change")
  p.add_argument("--max_eval_examples", type=int, help="validation decoding cap in training")
  p.add_argument("--model_size", help="T5 size override (tiny|small|base|...)")
  p.add_argument("--batch_size", type=int, help="BATCH_SIZE override")
  p.add_argument("--patience", type=int, help="early-stopping PATIENCE override")
  p.add_argument("--encoder", help="ENCODER override (e.g. hashing for smoke runs)")
  p.add_argument("--max_inputs_length", type=int, default=2048,
                 help="longest text-prompt encoder input allowed (tokens)")
  p.add_argument("--cost_batch", type=int, default=2,
                 help="batch of the input-cost step times (text prompting at N=10 and T5-small "
                 "needs ~2 GB of activations per example on CPU: keep it small on shared hosts)")
  p.add_argument("--cost_steps", type=int, default=3, help="timed steps per cost measurement")
  p.add_argument("--budget_batch", type=int,
                 help="measure budget step times at this batch and scale linearly to the runs' "
                 "batch (saves memory on a shared machine)")
  p.add_argument("--docs_dir", help="where RESULTS.md and the PNG go")
  p.add_argument("--ledger_dir",
                 help="where each finished run's figures are kept beside the work dir (default: "
                 f"{DEFAULT_LEDGER.relative_to(REPO)} in the repository for movielens_1m, none "
                 "otherwise; 'none' turns it off). A fresh clone resumes from it: runs it holds "
                 "for the current configuration count as done")
  p.add_argument("--jobs", type=int, default=1,
                 help="train runs side by side, each pinned to one core with single-threaded "
                 "XLA (2 on a 2-core host is ~1.3x the throughput of one run on both cores)")
  p.add_argument("--num_decodes", type=int, default=16,
                 help="after each train run, also score its best checkpoint with thresholded "
                 "label marginals over this many beams (cut tuned on the validation users; "
                 "2-3 min on one core); 0: no beam marginals (runs with rationale targets "
                 "still sample, see --num_samples)")
  p.add_argument("--num_samples", type=int, default=64,
                 help="for runs with rationale targets, the marginals are over this many "
                 "temperature-1 samples instead (their beams mostly differ in the rationale's "
                 "numbers, not in the labels; ~12 min at N=50 on this machine); 0: beams "
                 "as for the other runs")
  p.add_argument("--add_marginals", action="store_true",
                 help="also add those marginals to finished runs that lack them or have "
                 "marginals of another decoding (replaced), where the run's best checkpoint is "
                 "still in the work dir")
  p.add_argument("--add_readout", action="store_true",
                 help="also score the rationale readout (labels read from the rationale, "
                 "validation and test users, greedy) of finished runs with rationale targets "
                 "that lack it, where the run's best checkpoint is still in the work dir")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--verbose", action="store_true", help="echo every line of the runs")
  a = p.parse_args(argv)
  if a.ledger_dir is None and a.dataset == "movielens_1m":
    a.ledger_dir = str(DEFAULT_LEDGER)
  elif a.ledger_dir and a.ledger_dir.lower() == "none":
    a.ledger_dir = None
  a.only = [x for item in a.only for x in item.split(",") if x]
  if a.save_every is not None and a.save_every < 1:
    p.error(f"--save_every must be >= 1, got {a.save_every}")
  if a.num_decodes == 1 or a.num_decodes < 0:
    p.error(f"--num_decodes must be 0 (off) or >= 2, got {a.num_decodes}")
  if a.num_samples == 1 or a.num_samples < 0:
    p.error(f"--num_samples must be 0 (beams) or >= 2, got {a.num_samples}")
  return a


def check_dirs(a: argparse.Namespace) -> None:
  work = Path(a.work_dir).expanduser().resolve()
  if work == REPO or REPO in work.parents:
    raise SystemExit(f"error: --work_dir {work} is inside the repository {REPO}; MovieLens-derived "
                     "files must never land there. Use e.g. ~/persoma_repro.")
  if a.dataset == "synthetic":
    a.data_dir = None
    return
  d = Path(a.data_dir).expanduser()
  if not d.is_dir():
    raise SystemExit(f"error: data folder {d} does not exist. Pass --data_dir=FOLDER holding "
                     "ml-1m/ (and descriptions/ml-1m_descriptions.csv), e.g. ../shared/movielens "
                     "(see its README.md), or --dataset synthetic for a smoke run.")
  if a.dataset == "movielens_1m" and not ((d / "ml-1m" / "ratings.dat").exists()
                                          or (d / "ratings.dat").exists()):
    raise SystemExit(f"error: {d} holds no ml-1m release (expected {d / 'ml-1m' / 'ratings.dat'})")
  a.data_dir = str(d.resolve())


def settings_of(a: argparse.Namespace) -> plan_lib.Settings:
  return plan_lib.Settings(
      dataset=a.dataset, data_dir=a.data_dir, work_dir=a.work_dir, model_size=a.model_size,
      train_steps=a.max_steps, eval_every=a.eval_every, max_eval_examples=a.max_eval_examples,
      batch_size=a.batch_size, encoder=a.encoder, patience=a.patience,
      max_inputs_length=a.max_inputs_length, seed=a.seed, cost_batch=a.cost_batch,
      save_every=a.save_every)


def docs_dir_for(s: plan_lib.Settings, docs_dir: str | None, work_root: Path,
                 ledger_dir: str | None = str(DEFAULT_LEDGER)) -> Path:
  """Where RESULTS.md goes: `docs_dir` if given; the repository's docs/ only for the program
  itself (MovieLens 1M, no override of its settings: another seed or step count must not
  replace the published page) read with the repository's ledger (a side work dir with
  `--ledger_dir none`, e.g. retrained checkpoints, sees only its own runs); else
  `<work_dir>/docs`."""
  if docs_dir:
    return Path(docs_dir).expanduser()
  default = plan_lib.Settings()
  canonical = (s.dataset == "movielens_1m"
               and set(s.overrides()) - set(plan_lib.NOT_IDENTITY) == set()
               and s.max_inputs_length == default.max_inputs_length
               and s.cost_batch == default.cost_batch
               and ledger_dir is not None
               and Path(ledger_dir).expanduser().resolve() == DEFAULT_LEDGER.resolve())
  return REPO / "docs" if canonical else work_root / "docs"
