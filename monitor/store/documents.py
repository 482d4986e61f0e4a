"""A placed item's document (``{p}doc:{item}``): the fields the placement write stores, and a
candidate read back from them (``DETAILS``) as placement compares it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.core.dedup import Fingerprint
from monitor.core.stories import Embedding, Known, Member
from monitor.store.decisions import Candidate, Placement, Prepared, rounded

__all__ = [
    "candidate_of",
    "decode_embedding",
    "decode_vector",
    "document_fields",
    "encode_embedding",
    "encode_vector",
]


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
        "vector": encode_vector(p.vector),
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
        Member(item, story, decode_vector(vector), fp, decode_embedding(embedding))
        if vector
        else None
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


def encode_vector(vector: Mapping[str, float]) -> str:
    """A term vector as a document keeps it: a line per term, ``term<TAB>weight`` with the weight
    in ten-thousandths (the four decimals ``rounded`` keeps, exactly), about half the size of
    the JSON object documents held before (still read: ``decode_vector``)."""
    kept = rounded(vector)
    if not kept or any("\t" in term or "\n" in term for term in kept):
        return json.dumps(kept)
    return "\n".join(f"{term}\t{round(weight * 10_000)}" for term, weight in kept.items())


def decode_vector(stored: str) -> dict[str, float]:
    """A document's term vector back (``encode_vector``, or the JSON object of before)."""
    if stored.startswith("{"):
        vector: dict[str, float] = json.loads(stored)
        return vector
    found = {}
    for line in stored.split("\n"):
        term, _, weight = line.rpartition("\t")
        found[term] = int(weight) / 10_000
    return found
