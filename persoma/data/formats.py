"""Item text formats, the target string and the text-prompting history rendering.

Formats (per rated item):
  * ``uem`` (3 texts): ``The movie {title} is listed with genres {genres}``,
    ``The movie is rated with {rating} stars``, the description.
  * ``complete`` (1 text): title, description and rating.
  * ``title_score`` (1 text): title and rating.
  * ``description_score`` (1 text): description and rating.
"""

from __future__ import annotations

from typing import Sequence

FORMATS: tuple[str, ...] = ("uem", "complete", "title_score", "description_score")
NUM_TEXTS: dict[str, int] = {"uem": 3, "complete": 1, "title_score": 1, "description_score": 1}
NO_DESCRIPTION = "No description available."
TASK_INSTRUCTION = ("Given the movies a user rated, predict the genres the user likes and "
                    "dislikes.")
TARGET_TEMPLATE = "Liked Genres: {liked}. Not Liked Genres: {disliked}"
EMPTY_SIDE = "None"
# Header of the optional rationale written before the target (`format_rationale`); the parser
# (`persoma.metrics.verbalizer.parse`) reads only the text after the target's headers.
RATIONALE_HEADER = "Shown:"
# Its header for a row whose whole history is shown (`build_examples(whole_rationale=True)`):
# the rationale then follows the label rule itself, where `Shown:` follows the rule estimating
# the whole history from a window.
WHOLE_RATIONALE_HEADER = "Whole:"
RATIONALE_HEADERS = (RATIONALE_HEADER, WHOLE_RATIONALE_HEADER)
# The star scale of every supported dataset (MovieLens: 1-5 stars, or 0.5-5 in half stars): a
# mean rating outside it is no mean (`persoma.metrics.readout.canonical_means`).
STAR_SCALE = (0.5, 5.0)


def check_format(fmt: str) -> str:
  """``fmt`` if known, else ValueError listing the valid formats."""
  if fmt not in NUM_TEXTS:
    raise ValueError(f"unknown item format {fmt!r}; valid formats: {', '.join(FORMATS)}")
  return fmt


def format_rating(rating: float) -> str:
  """``4`` for 4.0, ``3.5`` for 3.5 (no trailing zeros)."""
  return f"{float(rating):g}"


def _desc(description: str) -> str:
  return description.strip() or NO_DESCRIPTION


def item_texts(fmt: str, title: str, genres: Sequence[str], description: str,
               rating: float) -> tuple[str, ...]:
  """The text(s) of one rated item: 3 for ``uem``, 1 otherwise."""
  check_format(fmt)
  r = format_rating(rating)
  if fmt == "uem":
    genre_text = ", ".join(genres) if genres else "unknown"
    return (f"The movie {title} is listed with genres {genre_text}",
            f"The movie is rated with {r} stars", _desc(description))
  if fmt == "complete":
    return (f"The movie {title}: {_desc(description)} It is rated with {r} stars.",)
  if fmt == "title_score":
    return (f"The movie {title} is rated with {r} stars",)
  return (f"{_desc(description)} The movie is rated with {r} stars",)


def format_target(liked: Sequence[str], disliked: Sequence[str]) -> str:
  """``Liked Genres: A, B. Not Liked Genres: C`` (``None`` for an empty side)."""
  return TARGET_TEMPLATE.format(liked=", ".join(liked) or EMPTY_SIDE,
                                disliked=", ".join(disliked) or EMPTY_SIDE)


def format_rationale(genres: Sequence[str], means: Sequence[float],
                     header: str = RATIONALE_HEADER,
                     counts: Sequence[int] | None = None) -> str:
  """``Shown: Action 3.75, Drama 4.10.`` (``Shown: None.`` for no genre): each genre's mean
  rating over the shown items, two decimals, in the order given, after ``header`` (one of
  ``RATIONALE_HEADERS``). With ``counts`` each genre's shown movie count comes before its
  mean: ``Shown: Action 4 3.75, Drama 10 4.10.``"""
  if header not in RATIONALE_HEADERS:
    raise ValueError(f"rationale header {header!r}; valid: {', '.join(RATIONALE_HEADERS)}")
  if counts is None:
    body = ", ".join(f"{g} {float(m):.2f}" for g, m in zip(genres, means, strict=True))
  else:
    body = ", ".join(f"{g} {int(c)} {float(m):.2f}"
                     for g, c, m in zip(genres, counts, means, strict=True))
  return f"{header} {body or EMPTY_SIDE}."


def rationale_header(text: str) -> str | None:
  """The first rationale header in ``text`` (one of ``RATIONALE_HEADERS``), or None."""
  found = [(text.find(h), h) for h in RATIONALE_HEADERS if h in text]
  return min(found)[1] if found else None


def parse_rationale_counts(text: str) -> dict[str, tuple[float, int | None]] | None:
  """``{genre: (mean, count or None)}`` of the rationale in a generated or target text (``{}``
  for ``Shown: None.``), after its first header (``Shown:`` or ``Whole:``); None when the text
  has no rationale. An entry is ``<name> <mean>`` or, written with counts, ``<name> <count>
  <mean>`` (a whole number before the mean is read as the count); other entries are skipped.
  Names are returned as written (normalise with ``persoma.data.normalize_genre``)."""
  header = rationale_header(text)
  if header is None:
    return None
  body = text[text.find(header) + len(header):]
  end = body.find("Liked Genres:")
  body = (body[:end] if end >= 0 else body).strip().rstrip(".").strip()
  out: dict[str, tuple[float, int | None]] = {}
  for entry in body.split(","):
    words = entry.split()
    try:
      mean = float(words[-1]) if len(words) >= 2 else None
    except ValueError:
      mean = None
    if mean is None:
      continue
    count = int(words[-2]) if len(words) >= 3 and words[-2].isdigit() else None
    name = " ".join(words[:-2] if count is not None else words[:-1])
    out.setdefault(name, (mean, count))
  return out


def parse_rationale(text: str) -> dict[str, float] | None:
  """``{genre: mean}`` of the rationale in a generated or target text (``{}`` for ``Shown:
  None.``), None when the text has no rationale: `parse_rationale_counts` without the counts."""
  parsed = parse_rationale_counts(text)
  return None if parsed is None else {g: m for g, (m, _) in parsed.items()}


def history_line(fmt: str, title: str, genres: Sequence[str], description: str,
                 rating: float) -> str:
  """One text-prompting line, e.g. ``Title: T, Description: D, Rating: 4``.

  ``uem`` adds ``Genres: ...``; ``title_score`` drops the description;
  ``description_score`` drops the title.
  """
  check_format(fmt)
  parts = []
  if fmt != "description_score":
    parts.append(f"Title: {title}")
  if fmt == "uem":
    parts.append(f"Genres: {', '.join(genres) if genres else 'unknown'}")
  if fmt != "title_score":
    parts.append(f"Description: {_desc(description)}")
  parts.append(f"Rating: {format_rating(rating)}")
  return ", ".join(parts)


def render_history_text(fmt: str, titles: Sequence[str], genres: Sequence[Sequence[str]],
                        descriptions: Sequence[str], ratings: Sequence[float],
                        instruction: str | None = TASK_INSTRUCTION) -> str:
  """The text-prompting input: the instruction, then one ``history_line`` per item."""
  n = len(titles)
  if not len(genres) == len(descriptions) == len(ratings) == n:
    raise ValueError("render_history_text: titles, genres, descriptions and ratings must have "
                     f"equal lengths, got {n}, {len(genres)}, {len(descriptions)}, {len(ratings)}")
  lines = [history_line(fmt, t, g, d, r)
           for t, g, d, r in zip(titles, genres, descriptions, ratings)]
  head = [instruction] if instruction else []
  return "\n".join(head + lines)


def history_text(data, positions, fmt: str = "complete",
                 instruction: str | None = TASK_INSTRUCTION) -> str:
  """``render_history_text`` for rating ``positions`` of a MovieLensData."""
  cat, rt = data.catalog, data.ratings
  idx = [int(rt.movie_idx[p]) for p in positions]
  return render_history_text(fmt, [cat.titles[i] for i in idx], [cat.genres[i] for i in idx],
                             [cat.descriptions[i] for i in idx],
                             [float(rt.rating[p]) for p in positions], instruction)


def positions_texts(data, positions, fmt: str) -> list[tuple[str, ...]]:
  """``item_texts`` of each rating position (``[n]`` tuples of NUM_TEXTS[fmt] strings)."""
  cat, rt = data.catalog, data.ratings
  out = []
  for p in positions:
    i = int(rt.movie_idx[p])
    out.append(item_texts(fmt, cat.titles[i], cat.genres[i], cat.descriptions[i],
                          float(rt.rating[p])))
  return out
