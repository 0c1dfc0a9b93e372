"""History samplers: size, time order, determinism, and what each one selects."""

import numpy as np
import pytest

from persoma.data import labels, samplers


def _big_user(data):
  return int(np.argmax(np.diff(data.ratings.user_offsets)))


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_every_sampler_returns_n_unique_own_positions_in_time_order(tiny_data, name):
  for u in range(0, tiny_data.num_users, 7):
    own = tiny_data.user_positions(u)
    pos = samplers.sample(name, tiny_data, u, 10, seed=0)
    assert pos.dtype == np.int64 and pos.shape == (10,)
    assert len(set(pos.tolist())) == 10 and set(pos.tolist()) <= set(own.tolist())
    assert np.all(np.diff(tiny_data.ratings.timestamp[pos]) >= 0)
    assert np.all(np.diff(pos) > 0)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_short_history_returns_everything(tiny_data, name):
  own = tiny_data.user_positions(0)
  np.testing.assert_array_equal(samplers.sample(name, tiny_data, 0, own.size + 5), own)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_deterministic(tiny_data, name):
  u = _big_user(tiny_data)
  a = samplers.sample(name, tiny_data, u, 8, seed=5)
  b = samplers.sample(name, tiny_data, u, 8, seed=5)
  np.testing.assert_array_equal(a, b)


def test_recency_is_latest(tiny_data):
  u = _big_user(tiny_data)
  np.testing.assert_array_equal(samplers.sample("recency", tiny_data, u, 6),
                                tiny_data.user_positions(u)[-6:])


def test_random_depends_on_seed_and_user(tiny_data):
  u = _big_user(tiny_data)
  draws = {tuple(samplers.sample("random", tiny_data, u, 8, seed=s)) for s in range(6)}
  assert len(draws) > 1
  # Roughly uniform: over many seeds every position is drawn sometimes.
  own = tiny_data.user_positions(u)
  hits = np.concatenate([samplers.sample("random", tiny_data, u, 8, seed=s) for s in range(300)])
  assert set(hits.tolist()) == set(own.tolist())


def test_long_tail_prefers_unpopular(tiny_data):
  thr = samplers.long_tail_threshold(tiny_data)
  assert thr == pytest.approx(np.percentile(tiny_data.catalog.popularity, 90))
  pop = tiny_data.catalog.popularity
  for u in range(tiny_data.num_users):
    own = tiny_data.user_positions(u)
    n_tail = int((pop[tiny_data.ratings.movie_idx[own]] < thr).sum())
    pos = samplers.sample("long_tail", tiny_data, u, 10, seed=1)
    got = pop[tiny_data.ratings.movie_idx[pos]]
    assert int((got < thr).sum()) == min(10, n_tail)


def test_topk_popularity_takes_most_popular(tiny_data):
  u = _big_user(tiny_data)
  pop = tiny_data.catalog.popularity
  own = tiny_data.user_positions(u)
  pos = samplers.sample("topk_popularity", tiny_data, u, 5)
  chosen = pop[tiny_data.ratings.movie_idx[pos]]
  rest = np.setdiff1d(own, pos)
  assert chosen.min() >= pop[tiny_data.ratings.movie_idx[rest]].max()


def test_genre_sampler_follows_genre_density(tiny_data):
  u = _big_user(tiny_data)
  own = tiny_data.user_positions(u)
  gm = labels.movie_genre_matrix(tiny_data)[tiny_data.ratings.movie_idx[own]].astype(float)
  weight = gm @ gm.mean(axis=0)
  top = set(own[weight >= np.quantile(weight, 0.75)].tolist())
  low = set(own[weight <= np.quantile(weight, 0.25)].tolist())
  hits = np.concatenate([samplers.sample("genre", tiny_data, u, 5, seed=s) for s in range(200)])
  n_top = sum(h in top for h in hits.tolist())
  n_low = sum(h in low for h in hits.tolist())
  assert n_top > 1.5 * n_low


def test_unknown_sampler_lists_valid_names(tiny_data):
  with pytest.raises(ValueError, match="recency.*random.*long_tail.*topk_popularity.*genre"):
    samplers.sample("popular", tiny_data, 0, 5)
  with pytest.raises(ValueError, match=">= 1"):
    samplers.sample("recency", tiny_data, 0, 0)
  with pytest.raises(ValueError, match="out of range"):
    samplers.sample("recency", tiny_data, tiny_data.num_users, 5)


@pytest.mark.parametrize("name", samplers.SAMPLERS)
def test_resample_is_own_ordered_deterministic_and_varies(tiny_data, name):
  u = _big_user(tiny_data)
  own = set(tiny_data.user_positions(u).tolist())
  copies = [samplers.resample(name, tiny_data, u, 8, seed=3, copy=k) for k in range(1, 6)]
  for pos in copies:
    assert pos.shape == (8,) and set(pos.tolist()) <= own and np.all(np.diff(pos) > 0)
  np.testing.assert_array_equal(copies[0], samplers.resample(name, tiny_data, u, 8, 3, 1))
  assert len({tuple(p.tolist()) for p in copies}) > 1  # augmentation actually augments


def test_resample_of_short_history_is_a_contiguous_window(tiny_data):
  own = tiny_data.user_positions(0)
  for k in range(1, 6):
    pos = samplers.resample("recency", tiny_data, 0, own.size + 5, seed=0, copy=k)
    assert own.size / 2 - 1 <= pos.size <= own.size
    start = int(np.flatnonzero(own == pos[0])[0])
    np.testing.assert_array_equal(pos, own[start:start + pos.size])


def test_resample_rejects_copy_zero(tiny_data):
  with pytest.raises(ValueError, match="copy must be >= 1"):
    samplers.resample("recency", tiny_data, 0, 5, seed=0, copy=0)


def test_resample_draws_from_its_window(tiny_data):
  u = _big_user(tiny_data)
  own = tiny_data.user_positions(u)
  for k in range(1, 6):
    window = samplers.resample_window(tiny_data, u, 8, seed=4, copy=k)
    start = int(np.flatnonzero(own == window[0])[0])
    np.testing.assert_array_equal(window, own[start:start + window.size])  # contiguous
    assert window.size >= min(8, own.size)
    for name in samplers.SAMPLERS:
      assert set(samplers.resample(name, tiny_data, u, 8, 4, k).tolist()) <= set(window.tolist())
    np.testing.assert_array_equal(samplers.resample("recency", tiny_data, u, 8, 4, k),
                                  window[-8:])
