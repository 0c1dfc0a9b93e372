"""History samplers: which N of a user's rated movies are shown to the model.

Each sampler returns rating positions (indices into ``data.ratings``), in time order:
  * ``recency``: the user's latest N ratings.
  * ``random``: N uniformly without replacement, seeded per (seed, user id).
  * ``long_tail``: uniform among the user's movies whose popularity is below the global 90th
    percentile of catalog popularity; if fewer than N qualify, the rest are the user's least
    popular remaining movies (so every sampler shows min(N, history) items).
  * ``topk_popularity``: the user's N globally most popular movies (ties: latest first).
  * ``genre``: N without replacement with probability proportional to the user's genre density,
    i.e. item weight = sum over its genres of the fraction of the user's history carrying it.
Users with at most N ratings get their whole history from every sampler.

Training-time augmentation (:func:`resample`): copy ``k >= 1`` of a user's history applies the
same sampler to a random contiguous time window of the user's ratings (50-100% of them, never
fewer than N when the user has more than N), so a train user contributes several different
histories of the same kind. :func:`resample_window` returns that window itself, so a caller can
label the copy from it (``persoma.data.build_examples(resample_labels='window')``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from persoma.data import labels as labels_lib
from persoma.data.structures import MovieLensData

LONG_TAIL_PERCENTILE = 90.0


def _rng(seed: int, user_id: int, name: str) -> np.random.Generator:
  tag = int.from_bytes(name.encode(), "little") % (2**32)
  return np.random.default_rng([int(seed) % (2**32), int(user_id) % (2**63), tag])


def _recency(data, user, pos, n, seed):
  return pos[-n:]


def _random(data, user, pos, n, seed):
  rng = _rng(seed, data.user_ids[user], "random")
  return rng.choice(pos, size=n, replace=False)


def long_tail_threshold(data: MovieLensData) -> float:
  """Global popularity (ratings per movie) at the 90th percentile of the catalog."""
  cat = data.catalog
  cached = getattr(cat, "_persoma_long_tail", None)
  if cached is None:
    cached = float(np.percentile(cat.popularity, LONG_TAIL_PERCENTILE))
    object.__setattr__(cat, "_persoma_long_tail", cached)
  return cached


def _long_tail(data, user, pos, n, seed):
  pop = data.catalog.popularity[data.ratings.movie_idx[pos]]
  tail = pos[pop < long_tail_threshold(data)]
  if tail.size >= n:
    return _rng(seed, data.user_ids[user], "long_tail").choice(tail, size=n, replace=False)
  rest = pos[pop >= long_tail_threshold(data)]
  rest_pop = data.catalog.popularity[data.ratings.movie_idx[rest]]
  fill = rest[np.lexsort((rest, rest_pop))][:n - tail.size]
  return np.concatenate([tail, fill])


def _topk_popularity(data, user, pos, n, seed):
  pop = data.catalog.popularity[data.ratings.movie_idx[pos]]
  order = np.lexsort((-pos, -pop))  # most popular first, then latest
  return pos[order[:n]]


def _genre(data, user, pos, n, seed):
  g = labels_lib.movie_genre_matrix(data)[data.ratings.movie_idx[pos]].astype(np.float64)
  density = g.mean(axis=0)  # [19] fraction of the history with each genre
  weights = g @ density + 1e-6  # [n_user]
  rng = _rng(seed, data.user_ids[user], "genre")
  return rng.choice(pos, size=n, replace=False, p=weights / weights.sum())


_SAMPLERS: dict[str, Callable[..., np.ndarray]] = {
    "recency": _recency,
    "random": _random,
    "long_tail": _long_tail,
    "topk_popularity": _topk_popularity,
    "genre": _genre,
}
SAMPLERS: tuple[str, ...] = tuple(_SAMPLERS)


def check_sampler(name: str) -> str:
  """``name`` if it is a known sampler, else ValueError listing the valid names."""
  if name not in _SAMPLERS:
    raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join(SAMPLERS)}")
  return name


def sample(name: str, data: MovieLensData, user: int, n: int, seed: int = 0) -> np.ndarray:
  """Samples up to ``n`` of user index ``user``'s ratings with sampler ``name``.

  Returns:
    ``[min(n, history)]`` int64 rating positions (indices into ``data.ratings``), time order.
  """
  fn = _SAMPLERS[check_sampler(name)]
  if n < 1:
    raise ValueError(f"history size n must be >= 1, got {n}")
  if not 0 <= user < data.num_users:
    raise ValueError(f"user index {user} out of range [0, {data.num_users})")
  pos = data.user_positions(user)
  if pos.size <= n:
    return pos
  # Positions of one user are already time-ordered, so sorting positions = time order.
  return np.sort(np.asarray(fn(data, user, pos, n, seed), dtype=np.int64))


def resample_window(data: MovieLensData, user: int, n: int, seed: int, copy: int
                    ) -> np.ndarray:
  """The random contiguous time window behind augmented history ``copy`` (>= 1) of ``user``.

  The window keeps a fraction ``U(0.5, 1)`` of the user's ratings, but at least ``n`` when the
  user has more than ``n``. Deterministic in ``(seed, user id, copy)``; independent of the sampler.

  Returns:
    ``[w]`` int64 rating positions, time order.
  """
  if copy < 1:
    raise ValueError(f"resample copy must be >= 1 (copy 0 is sample()), got {copy}")
  if n < 1:
    raise ValueError(f"history size n must be >= 1, got {n}")
  if not 0 <= user < data.num_users:
    raise ValueError(f"user index {user} out of range [0, {data.num_users})")
  pos = data.user_positions(user)
  size = pos.size
  rng = np.random.default_rng([int(seed) % (2**32), int(data.user_ids[user]) % (2**63),
                               int(copy), 0x52455341])  # "RESA"
  width = max(1, int(round(rng.uniform(0.5, 1.0) * size)))
  if size > n:
    width = max(width, n)
  start = int(rng.integers(0, size - width + 1))
  return pos[start:start + width]


def resample(name: str, data: MovieLensData, user: int, n: int, seed: int, copy: int
             ) -> np.ndarray:
  """Augmented history ``copy`` (>= 1) of user index ``user``: sampler ``name`` applied to
  :func:`resample_window` (windows of at most ``n`` ratings are shown whole).

  Returns:
    ``[<=n]`` int64 rating positions, time order.
  """
  fn = _SAMPLERS[check_sampler(name)]
  window = resample_window(data, user, n, seed, copy)
  if window.size <= n:
    return window
  return np.sort(np.asarray(fn(data, user, window, n, seed + 7919 * copy), dtype=np.int64))
