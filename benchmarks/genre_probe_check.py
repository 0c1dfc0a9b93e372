"""How well a genre-probe run's T5 encoder aggregates the history: its probe head against the
label rule's per-genre working on the shown items.

  python benchmarks/genre_probe_check.py MODEL_DIR [MODEL_DIR ...] [--split validation]
      [--json FILE]

A run trained with `ModelSpec.probe_loss_weight` (`persoma.models.genre_probe`) has a linear
head on the encoder output at the first 19 task-prompt positions. This restores the run's best
checkpoint (its `config.gin` gives the task and model), applies the network to a split and
compares the head with `genre_probe.probe_targets` under the run's probe rules (its
`whole_rule` on rows showing fewer than N items, if it has one). Per run it
prints: the share of genres whose qualify bit is right; the share of genres whose class (none,
liked, disliked) is right, and of users whose liked set and disliked set are both right; and
the mean absolute error (stars) of the mean rating over the genres with a shown movie; and the
weighted F1 of the probe's own liked and disliked genres against the split's targets. Those
sets are the probe's answer to the rule, read from the encoder, so they say how much of the
rule the encoder computes before the decoder writes anything.
Figures (metrics only) go to --json, keyed by model dir name and split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def check(model_dir: str, split: str) -> dict:
  """The probe's agreement with the rule on ``split`` (see the module docstring)."""
  import gin  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from persoma.models import genre_probe  # pylint: disable=g-import-not-at-top
  from persoma.train import experiment as experiment_lib  # pylint: disable=g-import-not-at-top
  from persoma.train import gin_cli, optim, partitioning  # pylint: disable=g-import-not-at-top
  from persoma.train import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  config = os.path.join(model_dir, "config.gin")
  if not os.path.exists(config):
    raise SystemExit(f"error: {config} does not exist (not a persoma-train model dir?)")
  gin.clear_config(clear_constants=True)
  gin_cli.parse([config], ["MODEL_DIR=None"], "")
  exp = gin.get_configurable(experiment_lib.Experiment)()
  if not exp.model.probe_loss_weight:
    raise SystemExit(f"error: {config}: ModelSpec.probe_loss_weight is 0, the run has no "
                     "genre probe")
  task = exp.task
  task.install()
  data = task.load(split, history_as_index=False)
  vocab = task.vocabulary()
  model = exp.build_model(data.arrays, vocab.vocab_size, vocab)
  cfg = trainer_lib.TrainerConfig(train_steps=1, batch_size=64, eval_batch_size=64)
  tr = trainer_lib.Trainer(model, partitioning.Partitioner(), optim.OptimizerConfig(), cfg, "",
                           data.arrays, inference_only=True)
  step, step_dir = tr.load_params_from(model_dir)
  probe = model.network.genre_probe

  def fn(params, batch):
    _, inter = model.network.apply(
        {"params": params}, batch["encoder_input_tokens"], batch["decoder_input_tokens"],
        batch["decoder_target_tokens"], batch["history_embeddings"], batch["history_mask"],
        mutable=["intermediates"])
    t = genre_probe.probe_targets(batch["history_genres"], batch["history_stars"],
                                  batch["history_mask"], probe.rule, probe.whole_rule)
    return {"out": genre_probe.find_probe_outputs(inter), **t}

  n, r = tr.map_eval_batches(data.arrays, split, jax.jit(fn), what="genre probe")
  out = r.pop("out")
  return {"split": split, "users": int(n), "step": int(step), "checkpoint": step_dir,
          **agreement(out, r), **answer_scores(out, data.targets[:n])}


def answer_scores(out: np.ndarray, targets: list[str]) -> dict[str, float]:
  """Weighted F1 (P, R) of the probe's own liked / disliked genres against the target texts."""
  from persoma.data import genres as genres_lib  # pylint: disable=g-import-not-at-top
  from persoma.metrics import verbalizer, weighted  # pylint: disable=g-import-not-at-top
  from persoma.models import genre_probe  # pylint: disable=g-import-not-at-top
  label = np.argmax(out[..., genre_probe.CLASS], -1)
  names = np.asarray(genres_lib.GENRES)
  preds = [(list(names[row == genre_probe.LIKED]), list(names[row == genre_probe.DISLIKED]))
           for row in label]
  truth = [(v.liked, v.disliked) for v in map(verbalizer.parse, targets)]
  s = weighted.score_sets(truth, preds)
  return {"answer_f1": s["f1"], "answer_precision": s["precision"], "answer_recall": s["recall"]}


def agreement(out: np.ndarray, targets: dict) -> dict[str, float]:
  """Figures of probe outputs ``[U, G, 5]`` against ``genre_probe.probe_targets`` (numpy)."""
  from persoma.models import genre_probe  # pylint: disable=g-import-not-at-top
  qualify = (out[..., genre_probe.QUALIFY] > 0) == targets["qualify"]
  label = np.argmax(out[..., genre_probe.CLASS], -1)
  sides = [np.all((label == c) == (targets["label"] == c), axis=1)
           for c in (genre_probe.LIKED, genre_probe.DISLIKED)]
  seen = targets["count"] > 0
  return {"qualify_accuracy": float(qualify.mean()),
          "class_accuracy": float((label == targets["label"]).mean()),
          "liked_set_exact": float(sides[0].mean()),
          "disliked_set_exact": float(sides[1].mean()),
          "both_sets_exact": float((sides[0] & sides[1]).mean()),
          "mean_abs_error": (float(np.abs(out[..., genre_probe.MEAN] - targets["mean"])[seen]
                                   .mean()) if seen.any() else None)}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("model_dirs", nargs="+", help="persoma-train model dirs of genre-probe runs")
  p.add_argument("--split", default="validation", choices=("validation", "test"))
  p.add_argument("--json", default=None, help="add the figures to this JSON file")
  a = p.parse_args(argv)
  old = {}
  if a.json and Path(a.json).exists():   # read (and check) it first: no decoding is wasted
    try:
      old = json.loads(Path(a.json).read_text())
    except json.JSONDecodeError as e:
      raise SystemExit(f"error: --json {a.json} is not valid JSON ({e}); it was left as is")
  results = {}
  for md in a.model_dirs:
    res = check(md, a.split)
    name = Path(md.rstrip("/")).parent.name if Path(md).name == "model" else Path(md).name
    results[f"{name}/{a.split}"] = {k: v for k, v in res.items() if k != "checkpoint"}
    print(f"{name} {a.split} step {res['step']} ({res['users']} users): qualify "
          f"{res['qualify_accuracy']:.3f}, class {res['class_accuracy']:.3f}, liked set "
          f"{res['liked_set_exact']:.3f}, disliked set {res['disliked_set_exact']:.3f}, both "
          f"{res['both_sets_exact']:.3f}, mean abs error "
          f"{'-' if res['mean_abs_error'] is None else format(res['mean_abs_error'], '.3f')} "
          "stars; "
          f"the probe's own answers: F1 {res['answer_f1']:.4f} (P {res['answer_precision']:.4f}"
          f" / R {res['answer_recall']:.4f})", flush=True)
  if a.json:
    from persoma import atomic_io  # pylint: disable=g-import-not-at-top
    old.update(results)
    atomic_io.write_text(a.json, json.dumps(old, indent=1, sort_keys=True) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
