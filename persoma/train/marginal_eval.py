"""Thresholded label marginals: `persoma-eval --num_decodes K --threshold T [--decode_method]`.

For each user, beam search (length penalty off, so scores are sequence log-probabilities)
returns K decodes, or with `--decode_method sample` K independent temperature samples;
`persoma.metrics.marginals` turns them into per-class marginals (the renormalised mass of the
beams naming a class, or the fraction of samples naming it), and a class is predicted when its
marginal reaches the threshold. `--threshold tune` picks it on the validation split (never on
the split being scored). The greedy text is not needed: the best decode alone is also scored
(`beam_top1`, or `sample_top1`: the most likely sample), so the gain of the threshold over the
decodes' own best answer shows on its own.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from persoma.data import formats
from persoma.data import genres as genres_lib
from persoma.metrics import marginals as marginals_lib
from persoma.metrics import verbalizer
from persoma.metrics import weighted

METHODS = ("beam", "sample")


def make_beam_fn(trainer: Any, num_decodes: int) -> Callable[[Any, Mapping[str, Any]], Any]:
  """Jitted `(params, batch) -> (tokens [B, K, T], log_probs [B, K])`, best decode last."""
  if num_decodes < 2:
    raise ValueError(f"label marginals need num_decodes >= 2, got {num_decodes}")
  model = trainer.model

  def beams(params, batch):
    return model.predict_batch_with_aux(
        params, batch, num_decodes=num_decodes, return_all_decodes=True,
        decoder_params={"decode_method": "beam", "alpha": 0.0})

  return jax.jit(beams, in_shardings=(trainer.param_shardings, trainer.batch_shardings),
                 out_shardings=trainer.partitioner.replicated)


def make_sample_fn(trainer: Any, num_decodes: int, temperature: float = 1.0,
                   seed: int = 0) -> Callable[[Any, Mapping[str, Any]], Any]:
  """`(params, batch) -> (tokens [B, K, T], log_probs [B, K])`: K temperature samples per row,
  most likely last. The n-th call (batch) samples with `fold_in(PRNGKey(seed), n)`, so one fn
  gives the same samples for the same batches in the same order, and a new fn starts over."""
  if num_decodes < 2:
    raise ValueError(f"label marginals need num_decodes >= 2, got {num_decodes}")
  if not temperature > 0.0:
    raise ValueError(f"sampled marginals need temperature > 0, got {temperature}")
  model = trainer.model

  def samples(params, batch, rng):
    return model.predict_batch_with_aux(
        params, batch, rng=rng, num_decodes=num_decodes, return_all_decodes=True,
        decoder_params={"decode_method": "sample", "temperature": temperature})

  jitted = jax.jit(samples, in_shardings=(trainer.param_shardings, trainer.batch_shardings,
                                          trainer.partitioner.replicated),
                   out_shardings=trainer.partitioner.replicated)
  key, calls = jax.random.PRNGKey(seed), itertools.count()
  return lambda params, batch: jitted(params, batch, jax.random.fold_in(key, next(calls)))


def make_decode_fn(trainer: Any, num_decodes: int, method: str = "beam",
                   temperature: float = 1.0, seed: int = 0
                   ) -> Callable[[Any, Mapping[str, Any]], Any]:
  """`make_beam_fn` or `make_sample_fn` by `method` ('beam' | 'sample')."""
  if method == "beam":
    return make_beam_fn(trainer, num_decodes)
  if method == "sample":
    return make_sample_fn(trainer, num_decodes, temperature, seed)
  raise ValueError(f"unknown marginal decode method {method!r}; use one of {METHODS}")


def decode_marginals(trainer: Any, arrays: Mapping[str, np.ndarray], split: str,
                     decode_fn: Callable[[np.ndarray], list[str]], num_decodes: int,
                     batch_size: int, max_examples: int | None = None,
                     progress_every_secs: float = 15.0,
                     beam_fn: Callable[[Any, Mapping[str, Any]], Any] | None = None,
                     method: str = "beam",
                     indicator_fn: Callable[[Sequence[str]], np.ndarray] | None = None
                     ) -> dict[str, Any]:
  """Decodes a split K times per user: `{'marginals' [n, C], 'top1' [n, C] indicators of the
  best decode, 'texts' list of n lists of K texts (best last), 'log_probs' [n, K]}`. `beam_fn`
  (from `make_decode_fn`, default beams) may decode several splits with one compile; `method`
  says how its decodes become marginals ('beam': renormalised mass, 'sample': fraction);
  `indicator_fn` (None: the labels each decode states) reads a decode's `[38]` classes, e.g.
  `persoma.metrics.readout.RationaleReadout.indicators`."""
  if method not in METHODS:
    raise ValueError(f"unknown marginal decode method {method!r}; use one of {METHODS}")
  fn = beam_fn or make_decode_fn(trainer, num_decodes, method)
  n, (tokens, aux) = trainer.map_eval_batches(
      arrays, split, fn, max_examples, batch_size=batch_size,
      progress_every_secs=progress_every_secs, what=f"{method} x{num_decodes}")
  flat = decode_fn(tokens.reshape((-1, tokens.shape[-1])))
  texts = [flat[i * num_decodes:(i + 1) * num_decodes] for i in range(n)]
  log_probs = np.asarray(aux["scores"])
  ind = indicator_fn(flat) if indicator_fn else verbalizer.parse_many(flat)[0]
  ind = np.asarray(ind).reshape((n, num_decodes, -1))
  marg = (marginals_lib.label_marginals(ind, log_probs) if method == "beam"
          else marginals_lib.sample_marginals(ind))
  return {"marginals": marg, "top1": ind[:, -1, :], "texts": texts, "log_probs": log_probs}


def score_indicators(pred: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
  """Weighted P/R/F1 and per-side F1 of `[n, C]` 0/1 predictions against `[n, C]` truths."""
  return {**weighted.weighted_prf(y_true, pred), **weighted.side_scores(y_true, pred)}


def score(marginals: np.ndarray, y_true: np.ndarray, tau: float) -> dict[str, float]:
  """`score_indicators` of `marginals >= tau`."""
  return score_indicators(marginals_lib.threshold(marginals, tau), y_true)


def truth(target_texts: Sequence[str], n: int) -> np.ndarray:
  """`[n, C]` indicators of the first n target texts."""
  return verbalizer.parse_many(list(target_texts)[:n])[0]


def texts_of(predicted: np.ndarray) -> list[str]:
  """`[n, 38]` 0/1 predictions -> target-format texts (`Liked Genres: A. Not Liked Genres: B`)."""
  k = genres_lib.NUM_GENRES
  return [formats.format_target([g for g, on in zip(genres_lib.GENRES, row[:k]) if on],
                                [g for g, on in zip(genres_lib.GENRES, row[k:]) if on])
          for row in np.asarray(predicted)]
