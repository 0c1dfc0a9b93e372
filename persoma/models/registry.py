"""Name -> class lookup for history adapters (``mlp``, ``transformer``, ``perceiver``, ``uem``,
``pool``, ``genre_stats``)."""
from __future__ import annotations

import dataclasses
from typing import Any

from persoma.models import adapters
from persoma.models import genre_stats
from persoma.models import set_pool
from persoma.models import uem


def adapter_classes() -> dict[str, type[adapters.Adapter]]:
  """All registered adapter classes by name."""
  return {**adapters.ADAPTERS, "uem": uem.UEM, "pool": set_pool.SetPoolAdapter,
          "genre_stats": genre_stats.GenreStatsAdapter}


def get_adapter(name: str, **fields: Any) -> adapters.Adapter:
  """Builds the adapter ``name`` with dataclass ``fields``.

  Raises:
    ValueError: unknown name (listing the known ones) or a field the class lacks.
  """
  classes = adapter_classes()
  if name not in classes:
    raise ValueError(f"unknown adapter {name!r}; choose one of {sorted(classes)}")
  cls = classes[name]
  known = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  for key in fields:
    if key not in known:
      raise ValueError(f"{cls.__name__} has no field {key!r}; fields: {sorted(known)}")
  return cls(**fields)
