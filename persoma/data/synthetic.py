"""A MovieLens-like synthetic dataset generated from a seed (offline, any machine).

Catalog: movies with plausible titles, 1-3 canonical genres drawn from a MovieLens-like prior, a
release year, and a short description using genre-typical words. Users: a latent taste per genre,
a personal rating bias, popularity- and taste-biased choice of what to watch, integer 1-5 ratings
with Gaussian noise, and increasing timestamps. Everything it produces is named 'synthetic' and
flagged ``synthetic=True``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from persoma.data import genres as genres_lib
from persoma.data.structures import LoadReport, RawData

# Relative genre frequencies, roughly as in ml-1m (IMAX rare, Drama/Comedy common).
_GENRE_PRIOR = {
    "Action": 8, "Adventure": 5, "Animation": 2, "Children": 3, "Comedy": 16, "Crime": 3,
    "Documentary": 2, "Drama": 20, "Fantasy": 1.5, "Film-Noir": 1, "Horror": 5, "IMAX": 0.5,
    "Musical": 1.5, "Mystery": 1.5, "Romance": 6, "Sci-Fi": 4, "Thriller": 6, "War": 2,
    "Western": 1.5,
}
# Genre-typical words used in titles and descriptions.
_WORDS = {
    "Action": ("explosive", "chase", "mercenary", "heist", "showdown", "commando"),
    "Adventure": ("expedition", "treasure", "jungle", "voyage", "quest", "island"),
    "Animation": ("animated", "talking animals", "colorful", "cartoon", "magical kingdom", "toys"),
    "Children": ("family", "kids", "puppy", "school friends", "birthday", "summer camp"),
    "Comedy": ("hilarious", "misadventure", "wacky", "prank", "wedding mix-up", "slacker"),
    "Crime": ("detective", "mob boss", "robbery", "gangster", "corrupt cop", "underworld"),
    "Documentary": ("real-life", "interviews", "archival footage", "true story", "filmmaker",
                    "investigation"),
    "Drama": ("family secrets", "grief", "redemption", "struggle", "small town", "estranged"),
    "Fantasy": ("wizard", "dragon", "enchanted", "sorcery", "ancient prophecy", "elves"),
    "Film-Noir": ("femme fatale", "shadowy", "private eye", "double-cross", "rain-soaked city",
                  "cynical"),
    "Horror": ("haunted", "killer", "terrifying", "demon", "cursed", "blood-soaked"),
    "IMAX": ("giant screen", "breathtaking", "aerial", "panoramic", "immersive", "spectacle"),
    "Musical": ("songs", "dance numbers", "Broadway", "singer", "showstopping", "chorus"),
    "Mystery": ("puzzling", "clues", "disappearance", "whodunit", "secret", "riddle"),
    "Romance": ("love affair", "heartfelt", "soulmates", "romantic", "first kiss", "courtship"),
    "Sci-Fi": ("spaceship", "alien", "futuristic", "time travel", "robot", "distant planet"),
    "Thriller": ("suspense", "conspiracy", "stalker", "hostage", "tense", "race against time"),
    "War": ("soldiers", "battlefield", "platoon", "wartime", "resistance", "front line"),
    "Western": ("cowboy", "frontier", "outlaw", "sheriff", "gunslinger", "wild west"),
}
_TITLE_A = ("Crimson", "Silent", "Last", "Golden", "Broken", "Hidden", "Midnight", "Lost",
            "Electric", "Wild", "Distant", "Burning", "Frozen", "Secret", "Final", "Dark",
            "Bright", "Iron", "Velvet", "Savage", "Gentle", "Endless", "Forgotten", "Silver")
_TITLE_B = ("Harbor", "Promise", "Road", "Empire", "Garden", "River", "Witness", "Horizon",
            "Kingdom", "Summer", "Letter", "Storm", "Station", "Mirror", "Frontier", "Dream",
            "Shadow", "Voyage", "Heart", "Circle", "Island", "Legacy", "Signal", "Season")
_SUBJECTS = ("a young woman", "two brothers", "a retired teacher", "a reluctant hero",
             "an ambitious journalist", "a small-town family", "a lonely inventor",
             "a group of friends", "a veteran pilot", "a stubborn detective")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Sizes and noise of the generated dataset (defaults: CPU-quickstart scale).

  Attributes:
    num_users: users generated (before pruning).
    num_movies: movies in the catalog (before pruning).
    min_ratings_per_user: every user rates at least this many movies.
    mean_ratings_per_user: mean ratings per user (geometric tail above the minimum).
    taste_scale: spread of latent genre tastes (larger = clearer preferences).
    noise: standard deviation of rating noise in stars.
    seed: everything is a function of this seed.
  """

  num_users: int = 600
  num_movies: int = 400
  min_ratings_per_user: int = 25
  mean_ratings_per_user: int = 70
  taste_scale: float = 1.1
  noise: float = 0.7
  seed: int = 0

  def __post_init__(self):
    if self.num_users < 1 or self.num_movies < 2:
      raise ValueError(f"SyntheticConfig needs num_users >= 1 and num_movies >= 2: {self}")
    if not 1 <= self.min_ratings_per_user <= self.mean_ratings_per_user:
      raise ValueError("SyntheticConfig needs 1 <= min_ratings_per_user <= "
                       f"mean_ratings_per_user: {self}")


def _catalog(cfg: SyntheticConfig, rng: np.random.Generator):
  names = genres_lib.GENRES
  prior = np.array([_GENRE_PRIOR[g] for g in names], dtype=np.float64)
  prior /= prior.sum()
  titles, gens, descs, seen = [], [], [], set()
  for m in range(cfg.num_movies):
    k = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    gi = np.sort(rng.choice(len(names), size=k, replace=False, p=prior))
    g = tuple(names[i] for i in gi)
    year = int(rng.integers(1950, 2004))
    base = f"The {_TITLE_A[rng.integers(len(_TITLE_A))]} {_TITLE_B[rng.integers(len(_TITLE_B))]}"
    title, n = f"{base} ({year})", 2
    while title in seen:
      title, n = f"{base} {n} ({year})", n + 1
    seen.add(title)
    words = [str(w) for gg in g for w in rng.choice(_WORDS[gg], size=2, replace=False)]
    subject = _SUBJECTS[rng.integers(len(_SUBJECTS))]
    desc = (f"In this {words[0]} {g[0].lower()} story, {subject} encountered {words[1]}"
            + (f", {', '.join(words[2:])}" if len(words) > 2 else "") + f". Released in {year}.")
    titles.append(title)
    gens.append(g)
    descs.append(desc)
  return titles, gens, descs


def generate_raw(cfg: SyntheticConfig = SyntheticConfig()) -> RawData:
  """Generates unpruned synthetic ratings and catalog (deterministic in ``cfg``)."""
  rng = np.random.default_rng(cfg.seed)
  titles, gens, descs = _catalog(cfg, rng)
  gmat = genres_lib.genre_matrix(gens).astype(np.float64)  # [M, 19]
  gmat_norm = gmat / gmat.sum(axis=1, keepdims=True)
  quality = rng.normal(0.0, 0.35, size=cfg.num_movies)
  log_pop = -0.9 * np.log(rng.permutation(cfg.num_movies) + 8.0)  # Zipf-like popularity
  tastes = rng.normal(0.0, cfg.taste_scale, size=(cfg.num_users, genres_lib.NUM_GENRES))
  bias = rng.normal(0.0, 0.3, size=cfg.num_users)
  extra_mean = cfg.mean_ratings_per_user - cfg.min_ratings_per_user
  counts = cfg.min_ratings_per_user + (
      rng.geometric(1.0 / (extra_mean + 1), size=cfg.num_users) - 1 if extra_mean else 0)
  counts = np.minimum(counts, cfg.num_movies * 3 // 4)
  start = 946684800 + rng.integers(0, 3 * 365 * 86400, size=cfg.num_users)
  users, movies, ratings, stamps = [], [], [], []
  for u in range(cfg.num_users):
    affinity = gmat_norm @ tastes[u]  # [M] mean taste over each movie's genres
    keys = log_pop + 0.6 * affinity + rng.gumbel(size=cfg.num_movies)
    chosen = np.argsort(-keys, kind="stable")[:counts[u]]
    score = 3.4 + bias[u] + quality[chosen] + affinity[chosen] + rng.normal(
        0.0, cfg.noise, size=chosen.size)
    ratings.append(np.clip(np.rint(score), 1, 5))
    gaps = rng.exponential(86400.0, size=chosen.size).astype(np.int64) + 60
    stamps.append(start[u] + np.cumsum(gaps))
    movies.append(chosen + 1)
    users.append(np.full(chosen.size, u + 1))
  report = LoadReport(source="synthetic", files=(f"synthetic:{cfg}",),
                      descriptions_matched=cfg.num_movies)
  return RawData(movie_ids=np.arange(1, cfg.num_movies + 1, dtype=np.int64), titles=tuple(titles),
                 genres=tuple(gens), descriptions=tuple(descs),
                 user_ids=np.concatenate(users).astype(np.int64),
                 rating_movie_ids=np.concatenate(movies).astype(np.int64),
                 ratings=np.concatenate(ratings).astype(np.float32),
                 timestamps=np.concatenate(stamps).astype(np.int64), report=report)
