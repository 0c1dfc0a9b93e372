"""On-disk catalog embedding cache: embed each distinct text once, cache, assemble histories."""

import types

import numpy as np
import pytest

from persoma.embeddings import cache as cache_lib, encoders, store as store_lib


def _uem_texts(fmt, title, genres, description, rating):
  """A stand-in for persoma.data.formats.item_texts (uem: 3 texts, else 1)."""
  if fmt == "uem":
    return (f"The movie {title} is listed with genres {', '.join(genres)}",
            f"The movie is rated with {rating:g} stars", description)
  if fmt == "title_score":
    return (f"{title}, rated {rating:g}",)
  raise ValueError(f"unknown format {fmt!r}")


def _tiny_data(name="tiny"):
  catalog = types.SimpleNamespace(
      movie_ids=np.array([10, 20, 30], np.int64),
      titles=("Heat (1995)", "Toy Story (1995)", "Alien (1979)"),
      genres=(("Action", "Crime"), ("Animation", "Children"), ("Horror", "Sci-Fi")),
      descriptions=("A cop and a thief.", "", "A crew meets a creature."),
      popularity=np.array([3, 2, 2], np.int64))
  # user 0: movies 0,1,2 ; user 1: movies 0,2 ; user 2: movies 0,1 (ratings repeat).
  ratings = types.SimpleNamespace(
      user_idx=np.array([0, 0, 0, 1, 1, 2, 2], np.int32),
      movie_idx=np.array([0, 1, 2, 0, 2, 0, 1], np.int32),
      rating=np.array([4, 3.5, 5, 4, 1, 4, 3.5], np.float32),
      timestamp=np.arange(7, dtype=np.int64),
      user_offsets=np.array([0, 3, 5, 7], np.int64))
  return types.SimpleNamespace(name=name, catalog=catalog, ratings=ratings, synthetic=True,
                               user_ids=np.array([1, 2, 3], np.int64))


def _build(data, enc, tmp_path, fmt="uem", **kw):
  return store_lib.EmbeddingStore.build(data, enc, fmt, tmp_path, item_texts=_uem_texts, **kw)


def test_each_distinct_text_is_embedded_once(tmp_path):
  data, enc = _tiny_data(), encoders.HashingEncoder(dim=16)
  st = _build(data, enc, tmp_path, chunk_size=4)
  per_rating = [t for m, r in zip(data.ratings.movie_idx, data.ratings.rating)
                for t in _uem_texts("uem", data.catalog.titles[m], data.catalog.genres[m],
                                    data.catalog.descriptions[m], float(r))]
  assert st.stats.distinct_texts == len(set(per_rating)) == len(st.texts)
  assert enc.num_texts == st.stats.encoded_texts == len(set(per_rating))
  assert st.stats.per_rating_texts == len(per_rating) == 21
  assert st.stats.ratio == pytest.approx(21 / len(set(per_rating)))
  assert st.stats.encode_calls == enc.num_calls == -(-len(st.texts) // 4)
  assert not st.stats.cache_hit
  assert (st.texts_per_item, st.dim, st.item_dim) == (3, 16, 48)


def test_history_is_lookup_and_concatenation(tmp_path):
  data, enc = _tiny_data(), encoders.HashingEncoder(dim=16)
  st = _build(data, enc, tmp_path)
  emb, mask = st.history(data, np.array([3, 4]), history_size=4)
  assert emb.shape == (4, 48) and emb.dtype == np.float32
  np.testing.assert_array_equal(mask, [1, 1, 0, 0])
  assert mask.dtype == np.int32
  fresh = encoders.HashingEncoder(dim=16)
  for row, pos in enumerate([3, 4]):
    m, r = data.ratings.movie_idx[pos], float(data.ratings.rating[pos])
    want = fresh.encode(list(_uem_texts("uem", data.catalog.titles[m], data.catalog.genres[m],
                                        data.catalog.descriptions[m], r))).reshape(-1)
    np.testing.assert_allclose(emb[row], want, rtol=1e-6)
  assert not emb[2:].any()
  batch_emb, batch_mask = st.histories(data, [np.array([3, 4]), np.array([0])], 4)
  np.testing.assert_array_equal(batch_emb[0], emb)
  np.testing.assert_array_equal(batch_mask[1], [1, 0, 0, 0])
  with pytest.raises(ValueError, match="history_size=1"):
    st.history(data, np.array([0, 1]), history_size=1)
  with pytest.raises(IndexError, match="out of range"):
    st.history(data, np.array([99]), history_size=2)
  single = _build(data, enc, tmp_path, fmt="title_score")
  assert single.history(data, np.array([0]), 2)[0].shape == (2, 16)


def test_second_build_reads_the_cache(tmp_path):
  data = _tiny_data()
  first = _build(data, encoders.HashingEncoder(dim=16), tmp_path)
  enc = encoders.HashingEncoder(dim=16)
  second = _build(data, enc, tmp_path)
  assert second.stats.cache_hit and enc.num_texts == 0 and second.stats.encoded_texts == 0
  np.testing.assert_array_equal(first.table, second.table)
  assert first.stats.cache_path == second.stats.cache_path
  # A different catalog text gives a different key, never stale vectors.
  changed = _tiny_data()
  changed.catalog.descriptions = ("Changed.", "", "A crew meets a creature.")
  third = _build(changed, enc, tmp_path)
  assert third.stats.cache_path != first.stats.cache_path and enc.num_texts > 0


@pytest.mark.parametrize("damage", ["truncate", "garbage", "values"])
def test_corrupt_cache_is_rebuilt_with_a_message(tmp_path, capsys, damage):
  data = _tiny_data()
  first = _build(data, encoders.HashingEncoder(dim=16), tmp_path)
  path = first.stats.cache_path
  raw = open(path, "rb").read()
  if damage == "truncate":
    open(path, "wb").write(raw[: len(raw) // 2])
  elif damage == "garbage":
    open(path, "wb").write(b"not a cache file")
  else:  # right structure, tampered numbers: caught by the checksum
    with np.load(path) as f:
      contents = dict(f)
    contents["embeddings"] = contents["embeddings"] + 1
    np.savez(open(path, "wb"), **contents)
  capsys.readouterr()
  enc = encoders.HashingEncoder(dim=16)
  again = _build(data, enc, tmp_path)
  assert "corrupt or stale" in capsys.readouterr().err
  assert enc.num_texts == len(again.texts) and not again.stats.cache_hit
  np.testing.assert_array_equal(again.table, first.table)
  assert _build(data, enc, tmp_path).stats.cache_hit  # rewritten correctly


class _NaNEncoder(encoders.HashingEncoder):
  def encode(self, texts):
    out = super().encode(texts)
    out[[i for i, t in enumerate(texts) if "Alien" in t]] = np.nan
    return out


def test_non_finite_embedding_names_text_and_item(tmp_path):
  with pytest.raises(ValueError, match=r"non-finite.*Alien \(1979\).*movie_id 30"):
    _build(_tiny_data(), _NaNEncoder(dim=8), tmp_path)


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
  monkeypatch.setenv("PERSOMA_CACHE_DIR", str(tmp_path / "c"))
  assert cache_lib.default_cache_dir() == tmp_path / "c"
  st = store_lib.EmbeddingStore.build(_tiny_data(), encoders.HashingEncoder(dim=8), "uem",
                                      item_texts=_uem_texts)
  assert st.stats.cache_path.startswith(str(tmp_path / "c"))
  monkeypatch.delenv("PERSOMA_CACHE_DIR")
  assert str(cache_lib.default_cache_dir()).endswith(".cache/persoma")


def test_progress_reports_rate_and_eta(tmp_path, capsys):
  _build(_tiny_data(), encoders.HashingEncoder(dim=8), tmp_path, progress=True, chunk_size=2)
  err = capsys.readouterr().err
  assert "items/s" in err and "ETA" in err and "/" in err


def test_real_catalog_embeds_each_distinct_text_once(tmp_path):
  from pathlib import Path
  shared = Path(__file__).resolve().parents[1].parent / "shared" / "movielens"
  if not (shared / "ml-latest-small" / "ratings.csv").exists():
    pytest.skip(f"real MovieLens data not found under {shared}")
  import persoma.data as data_lib
  from persoma.data import formats
  data = data_lib.load_dataset("movielens/latest-small", shared, descriptions="auto")
  enc = encoders.HashingEncoder(dim=8)
  st = store_lib.EmbeddingStore.build(data, enc, "uem", tmp_path)
  every = formats.positions_texts(data, range(len(data.ratings)), "uem")
  distinct = {t for item in every for t in item}
  assert enc.num_texts == st.stats.distinct_texts == len(distinct) == len(st.texts)
  assert st.stats.per_rating_texts == 3 * len(data.ratings) and st.stats.ratio > 50
  # assembled rows equal a fresh embedding of that rating's own texts
  rng = np.random.default_rng(0)
  pos = np.sort(rng.choice(len(data.ratings), 5, replace=False))
  emb, _ = st.history(data, pos, 5)
  fresh = encoders.HashingEncoder(dim=8)
  for row, p in enumerate(pos):
    np.testing.assert_array_equal(emb[row], fresh.encode(list(every[p])).reshape(-1))


def test_standardized_zscores_each_text_slot_and_keeps_rows(tmp_path):
  data = _tiny_data()
  st = _build(data, encoders.HashingEncoder(dim=16), tmp_path)
  z = st.standardized()
  assert z.table.shape == st.table.shape and z.texts == st.texts
  assert st.slot_stats is None and len(z.slot_stats) == st.texts_per_item
  with pytest.raises(ValueError, match="already standardized"):
    z.standardized()
  for j in range(st.texts_per_item):
    rows = np.unique(st.pair_text[:, j])
    np.testing.assert_allclose(z.table[rows].mean(axis=0), 0.0, atol=1e-5)
    var = st.table[rows].var(axis=0)
    np.testing.assert_allclose(z.table[rows].std(axis=0), np.sqrt(var / (var + 1e-6)),
                               atol=1e-4)
  # histories come from the standardized table, padding stays zero
  pos = [np.array([0, 2]), np.array([3])]
  emb, mask = z.histories(data, pos, 3)
  np.testing.assert_array_equal(emb[1, 1:], 0.0)
  np.testing.assert_array_equal(emb[0, 0], z.table[z.text_index(np.array([0]))].reshape(-1))
  assert not np.allclose(emb, st.histories(data, pos, 3)[0])
