"""persoma's SeqIO layer: vocabulary, task builders, feature converter, numpy materialization.

``import persoma_tasks`` registers all tasks; see :mod:`persoma.seqio_tasks.tasks` for names and
:mod:`persoma.seqio_tasks.config` for where data, encoder, cache and vocabulary come from.
"""

from persoma.seqio_tasks import config
from persoma.seqio_tasks.config import PersomaDataConfig, configure, get_config, set_config
from persoma.seqio_tasks.feature_converter import PersomaFeatureConverter
from persoma.seqio_tasks.materialize import gather_history, history_table, materialize
from persoma.seqio_tasks.tasks import (TaskSpec, get_vocabulary, parse_task_name, register_all,
                                       register_task)
from persoma.seqio_tasks.vocab import LazySentencePieceVocabulary

__all__ = [
    "config", "PersomaDataConfig", "configure", "get_config", "set_config",
    "PersomaFeatureConverter", "materialize", "history_table", "gather_history", "TaskSpec", "get_vocabulary", "parse_task_name",
    "register_all", "register_task", "LazySentencePieceVocabulary",
]
