"""Importing `persoma_tasks` registers persoma's SeqIO tasks (see persoma/seqio_tasks).

Names: ``persoma_{dataset}_h{N}_{sampler}_{fmt}`` and ``..._textprompt`` for dataset in
synthetic, movielens_1m, movielens_100k, movielens_latest_small, movielens_20m, movielens_25m;
N in 5, 10, 20, 50, 100; sampler in recency, random, long_tail, topk_popularity, genre; fmt in
uem, complete, title_score, description_score. Registration reads no data; the first
``get_dataset`` loads it (settings: ``persoma.seqio_tasks.config``).
"""

from persoma.seqio_tasks.tasks import register_all

TASK_NAMES: list[str] = register_all()
