"""Local MovieLens readers (every layout), descriptions join, bad input, TFDS source."""

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import require_movielens
from persoma.data import DataFormatError, load_dataset, loaders, releases

MOVIES_DAT = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
              "3::Amélie (2001)::Comedy|Romance\n")


def _dat_release(root: Path, ratings: str, movies: str = MOVIES_DAT) -> Path:
  d = root / "ml-1m"
  d.mkdir(parents=True)
  (d / "movies.dat").write_bytes(movies.encode("latin-1"))
  (d / "ratings.dat").write_text(ratings)
  return d


def _ratings_lines(n_users=3, sep="::", movies=(1, 2, 3)):
  lines = []
  for u in range(1, n_users + 1):
    for k, m in enumerate(movies):
      lines.append(sep.join([str(u), str(m), str(1 + (u + m) % 5), str(1000 + 10 * k + u)]))
  return "\n".join(lines) + "\n"


def test_dat_layout_latin1_and_genres(tmp_path):
  _dat_release(tmp_path, _ratings_lines())
  data = load_dataset("movielens/1m", data_dir=tmp_path, min_item_ratings=1, min_user_ratings=1)
  assert data.num_users == 3 and len(data.catalog) == 3 and len(data.ratings) == 9
  assert data.catalog.titles[2] == "Amélie (2001)"
  assert data.catalog.genres[0] == ("Animation", "Children", "Comedy")
  assert data.catalog.descriptions == ("", "", "")
  assert not data.synthetic and data.name == "movielens/1m"


def test_100k_layout(tmp_path):
  d = tmp_path / "ml-100k"
  d.mkdir()
  flags = ["0"] * 19
  flags[4] = "1"  # Children's
  flags[5] = "1"  # Comedy
  items = [f"1|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(flags)}",
           f"2|GoldenEye (1995)|01-Jan-1995||http://x|{'|'.join(['0', '1'] + ['0'] * 17)}"]
  (d / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
  (d / "u.data").write_text("1\t1\t5\t100\n1\t2\t3\t90\n2\t1\t4\t80\n")
  data = load_dataset("movielens/100k", data_dir=tmp_path, min_item_ratings=1,
                      min_user_ratings=1)
  assert data.catalog.genres == (("Children", "Comedy"), ("Action",))
  # user 1's ratings are time-sorted: movie 2 (t=90) before movie 1 (t=100).
  assert data.ratings.movie_idx[:2].tolist() == [1, 0]
  assert data.ratings.rating.dtype == np.float32


def test_csv_layout_with_quotes_half_stars_and_descriptions(tmp_path):
  d = tmp_path / "ml-latest-small"
  d.mkdir()
  (d / "movies.csv").write_text(
      'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
      "2,Nothing (2000),(no genres listed)\n")
  (d / "ratings.csv").write_text(
      "userId,movieId,rating,timestamp\n1,1,4.5,10\n1,2,0.5,5\n2,1,3.0,7\n")
  desc = tmp_path / "desc.csv"
  desc.write_text('movieId,title,overview\n1,x,"A president, in love."\n999,y,ignored\n')
  data = load_dataset("movielens/latest-small", data_dir=tmp_path, descriptions=desc,
                      min_item_ratings=1, min_user_ratings=1)
  assert data.catalog.titles[0] == "American President, The (1995)"
  assert data.catalog.genres == (("Comedy", "Drama", "Romance"), ())
  assert data.catalog.descriptions == ("A president, in love.", "")
  assert sorted(data.ratings.rating.tolist()) == [0.5, 3.0, 4.5]
  assert data.report.descriptions_matched == 1


def test_release_dir_itself_and_missing_dir(tmp_path):
  folder = _dat_release(tmp_path, _ratings_lines())
  data = load_dataset("movielens/1m", data_dir=folder, min_item_ratings=1, min_user_ratings=1)
  assert len(data.ratings) == 9
  with pytest.raises(FileNotFoundError, match="ml-1m"):
    load_dataset("movielens/1m", data_dir=tmp_path / "nowhere", source="local")


def test_layout_mismatch_is_named(tmp_path):
  folder = _dat_release(tmp_path, _ratings_lines()).rename(tmp_path / "my-copy")
  with pytest.raises(DataFormatError, match="ratings.csv"):
    load_dataset("movielens/25m", data_dir=folder)
  with pytest.raises(DataFormatError, match="movielens/1m release, not movielens/25m"):
    load_dataset("movielens/25m", data_dir=folder.rename(tmp_path / "ml-1m"))


def test_other_release_folder_is_refused(tmp_path):
  d = tmp_path / "ml-latest-small"
  d.mkdir()
  (d / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n")
  (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,10\n")
  with pytest.raises(DataFormatError, match="latest-small release, not movielens/25m"):
    load_dataset("movielens/25m", data_dir=d)


def test_malformed_line_strict_names_file_and_line(tmp_path):
  text = _ratings_lines().splitlines()
  text[4] = "2::2::oops::1000"
  _dat_release(tmp_path, "\n".join(text) + "\n")
  with pytest.raises(DataFormatError, match=r"ratings\.dat:5:"):
    load_dataset("movielens/1m", data_dir=tmp_path, min_item_ratings=1, min_user_ratings=1)
  data = load_dataset("movielens/1m", data_dir=tmp_path, strict=False, min_item_ratings=1,
                      min_user_ratings=1)
  assert len(data.ratings) == 8
  assert list(data.report.skipped_lines.values()) == [1]
  assert next(iter(data.report.skipped_lines)).endswith("ratings.dat")


def test_wrong_field_count_and_bad_movie_line(tmp_path):
  _dat_release(tmp_path, _ratings_lines() + "7::1::4\n",
               movies=MOVIES_DAT + "4::Broken line without genres\n")
  with pytest.raises(DataFormatError, match=r"ratings\.dat:10: expected 4 fields.*'7::1::4'"):
    releases.read_release(tmp_path / "ml-1m")
  with pytest.raises(DataFormatError, match=r"movies\.dat:4:"):
    loaders.parse_movies_dat(tmp_path / "ml-1m" / "movies.dat")
  raw = releases.read_release(tmp_path / "ml-1m", strict=False)
  assert len(raw.report.skipped_lines) == 2 and raw.ratings.size == 9


def test_a_misspelled_genre_is_an_error_in_strict_mode(tmp_path):
  movies = MOVIES_DAT.replace("Adventure|", "Adventrue|") + "4::Nothing (2000)::(no genres listed)\n"
  d = _dat_release(tmp_path, _ratings_lines(), movies=movies)
  with pytest.raises(DataFormatError, match=r"movies\.dat:2: unknown genre\(s\) \['Adventrue'\]"):
    loaders.parse_movies_dat(d / "movies.dat")
  (ids, _, gens), skipped = loaders.parse_movies_dat(d / "movies.dat", strict=False)
  assert ids == [1, 2, 3, 4] and skipped == 0  # kept, with the unknown name dropped
  assert gens[1] == ("Children", "Fantasy") and gens[3] == ()
  csv_path = tmp_path / "movies.csv"
  csv_path.write_text("movieId,title,genres\n1,A (1990),Comedy|Westren\n")
  with pytest.raises(DataFormatError, match=r"movies\.csv:2: unknown genre\(s\) \['Westren'\]"):
    loaders.parse_movies_csv(csv_path)


def test_unknown_movie_ids_error_or_counted_skip(tmp_path):
  _dat_release(tmp_path, _ratings_lines() + "1::42::5::9999\n")
  with pytest.raises(DataFormatError, match="movie 42"):
    load_dataset("movielens/1m", data_dir=tmp_path, min_item_ratings=1, min_user_ratings=1)
  data = load_dataset("movielens/1m", data_dir=tmp_path, strict=False, min_item_ratings=1,
                      min_user_ratings=1)
  assert data.report.unknown_movie_ratings == 1 and len(data.ratings) == 9


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_rating_always_errors(tmp_path, bad):
  _dat_release(tmp_path, _ratings_lines() + f"1::1::{bad}::5\n")
  for strict in (True, False):
    with pytest.raises(DataFormatError, match="non-finite"):
      releases.read_release(tmp_path / "ml-1m", strict=strict)


def test_descriptions_csv_without_overview_column(tmp_path):
  p = tmp_path / "d.csv"
  p.write_text("movieId,title\n1,x\n")
  with pytest.raises(DataFormatError, match="overview"):
    loaders.load_descriptions(p)


def test_unknown_dataset_name():
  with pytest.raises(ValueError, match="movielens/1m"):
    load_dataset("movielens/7m")


def test_real_ml1m_with_descriptions(ml1m):
  data = ml1m
  assert data.report.raw_ratings == 1_000_209 and data.report.raw_users == 6040
  # Pruning removes movies and users but keeps the vast majority of ratings.
  assert 3000 < len(data.catalog) < 3706 and 6000 < data.num_users <= 6040
  assert len(data.ratings) > 990_000
  assert data.catalog.popularity.min() >= 20
  assert np.diff(data.ratings.user_offsets).min() >= 20
  assert data.catalog.popularity.sum() == len(data.ratings)
  genres_seen = {g for gs in data.catalog.genres for g in gs}
  assert "Children" in genres_seen and "IMAX" not in genres_seen and len(genres_seen) == 18
  covered = np.mean([bool(d) for d in data.catalog.descriptions])
  assert covered > 0.9
  assert data.report.descriptions_matched > 0
  assert data.report.files[-1].endswith("ml-1m_descriptions.csv")


def test_real_ml_latest_small():
  root = require_movielens("ml-latest-small")
  data = load_dataset("movielens/latest-small", data_dir=root)
  assert data.report.raw_ratings == 100_836 and data.report.raw_users == 610
  assert set(np.unique(data.ratings.rating * 2).astype(int)) <= set(range(1, 11))
  assert "IMAX" in {g for gs in data.catalog.genres for g in gs}


def test_tfds_source_with_mock_data(tmp_path):
  """The TFDS path converts builder examples; mocked, so no network is ever touched."""
  tfds = pytest.importorskip("tensorflow_datasets")
  tf = pytest.importorskip("tensorflow")
  from persoma.data import tfds_source  # pylint: disable=g-import-not-at-top

  movies = {"movie_id": ["10", "20", "30"], "movie_title": ["A (1990)", "B (1991)", "C (1992)"],
            "movie_genres": [[0], [3, 4], [1]]}
  ratings = {"user_id": ["7", "7", "8", "8", "8"], "movie_id": ["10", "20", "10", "20", "30"],
             "user_rating": [5.0, 2.0, 4.0, 1.0, 3.0], "timestamp": [3, 1, 5, 4, 6]}
  seen = []

  def as_dataset(self, split, **kwargs):
    del split, kwargs
    seen.append((self.name, self.builder_config.name, str(self.data_dir)))
    if self.builder_config.name.endswith("movies"):
      ragged = tf.ragged.constant(movies["movie_genres"], dtype=tf.int64)
      return tf.data.Dataset.from_tensor_slices({
          "movie_id": movies["movie_id"], "movie_title": movies["movie_title"],
          "movie_genres": ragged}).map(lambda ex: {**ex, "movie_genres": ex["movie_genres"]})
    return tf.data.Dataset.from_tensor_slices({
        "user_id": ratings["user_id"], "movie_id": ratings["movie_id"],
        "user_rating": tf.constant(ratings["user_rating"], tf.float32),
        "timestamp": tf.constant(ratings["timestamp"], tf.int64)})

  tfds_dir = tmp_path / "tfds"
  tfds_dir.mkdir()
  with tfds.testing.mock_data(as_dataset_fn=as_dataset, data_dir=str(tfds_dir)):
    raw = tfds_source.read_tfds("movielens/100k", data_dir=tfds_dir)
    # load_dataset routes to TFDS when data_dir holds no release files.
    data = load_dataset("movielens/100k", data_dir=tfds_dir, min_item_ratings=1,
                        min_user_ratings=1)
  assert {s[1] for s in seen} == {"100k-ratings", "100k-movies"}
  assert all(s[2].startswith(str(tfds_dir)) for s in seen), seen
  assert data.report.source == "tfds" and data.num_users == 2 and len(data.ratings) == 5
  assert data.ratings.timestamp[:2].tolist() == [1, 3]  # user 7 in time order
  assert raw.report.source == "tfds"
  assert raw.movie_ids.tolist() == [10, 20, 30]
  # Genres map through the builder's own ClassLabel names, normalised.
  assert raw.genres[0] == ("Action",) and raw.genres[1] == ("Children", "Comedy")
  assert raw.genres[2] == ("Adventure",)
  assert raw.user_ids.tolist() == [7, 7, 8, 8, 8]
  assert raw.rating_movie_ids.tolist() == [10, 20, 10, 20, 30]
  assert math.isclose(float(raw.ratings.sum()), 15.0)


def test_a_missing_data_dir_or_unprepared_tfds_is_a_clear_error_not_a_download(tmp_path):
  """A mistyped data_dir fails at once (TFDS would create it and download); a folder without
  the release and without prepared TFDS data fails when downloads are off, naming what it
  holds."""
  with pytest.raises(FileNotFoundError, match=r"data_dir .*nope does not exist.*ml-1m/"):
    load_dataset("movielens/1m", data_dir=tmp_path / "nope")
  pytest.importorskip("tensorflow_datasets")
  (tmp_path / "ml-1m").mkdir()
  with pytest.raises(FileNotFoundError,
                     match=r"no release files and no prepared TFDS .*holds ml-1m/, another"):
    load_dataset("movielens/latest-small", data_dir=tmp_path, download=False)


def test_tfds_unknown_name():
  from persoma.data import tfds_source  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="movielens/1m"):
    tfds_source.builder_names("movielens/10m")
