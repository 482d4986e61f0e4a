"""A placed item's document (``{p}doc:{item}``): the fields the placement write stores, and a
candidate read back from them (``DETAILS``) as placement compares it."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from monitor.core.dedup import Fingerprint
from monitor.core.stories import Embedding, Known, Member
from monitor.store.decisions import Candidate, Placement, Prepared, rounded

__all__ = ["candidate_of", "decode_embedding", "document_fields", "encode_embedding"]


def document_fields(p: Prepared, placed: Placement, now: float) -> list[Any]:
    """An item's document as the placement script's ``HSET`` takes it: field, value, …"""
    item = p.item
    document = {
        "fingerprint": p.fingerprint.encode(),
        "story": placed.story,
        "duplicate_of": placed.duplicate_of or "",
        "matched": placed.matched or "",
        "similarity": placed.similarity,
        "confident": int(placed.confident),
        "vector": json.dumps(rounded(p.vector)),
        "source": item.source,
        "title": item.title,
        "url": item.url or "",
        "seen": now,
        "when": p.when,
        "embedding": encode_embedding(p.embedding),
    }
    return [x for pair in document.items() for x in pair]


def candidate_of(
    item: str,
    encoded: str | None,
    story: str | None,
    vector: str | None,
    title: str | None,
    source: str | None,
    when: str | None,
    embedding: str | None,
) -> Candidate | None:
    """An earlier item as placement compares it, from its document's fields (``DETAILS``);
    None when it expired."""
    if not story:
        return None
    fp = Fingerprint.decode(encoded) if encoded else None
    member = (
        Member(item, story, json.loads(vector), fp, decode_embedding(embedding)) if vector else None
    )
    known = Known(item, story, fp) if fp is not None else None
    return Candidate(known, member, title or "", source or "", float(when or 0))


def encode_embedding(embedding: Embedding | None) -> str:
    """An embedding as stored: float16, base64 (768 bytes for 384 dimensions); "" for none."""
    if embedding is None:
        return ""
    return base64.b64encode(np.asarray(embedding, dtype=np.float16).tobytes()).decode()


def decode_embedding(stored: str | None) -> Embedding | None:
    if not stored:
        return None
    values = np.frombuffer(base64.b64decode(stored), dtype=np.float16).astype(np.float64)
    return tuple(values.tolist())
