"""Optimistic story placement, what it keeps of a batch: what the batch read (``Reading``), what
the write answered (``Written``), and the keys an item reads and writes as the placement log
compares them (4-byte hashes). ``store.stories`` reads, decides and writes; ``story_scripts.PLACE``
refuses a write when another worker wrote, since the batch read, a key it read.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.store.decisions import Candidate

__all__ = ["Reading", "Written", "key_hashes"]


def key_hashes(kind: str, names: Iterable[str]) -> bytes:
    """Placement keys as the placement log compares them, 4 bytes each (CRC-32 of ``kind``,
    "b" for an LSH band value or "t" for a term, and the name). Two keys with one hash only
    make a batch read again what it did not need to."""
    return b"".join(zlib.crc32((kind + name).encode()).to_bytes(4, "big") for name in names)


@dataclass
class Reading:
    """What a batch read of its candidates: the placement count first, then per item (by
    index) the items sharing a band and those found under its query terms, and what each of
    them is."""

    at: int
    bands: dict[int, set[str]] = field(default_factory=dict)
    terms: dict[int, set[str]] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)

    def found(self, index: int) -> set[str]:
        """The earlier items the item at ``index`` found."""
        return self.bands[index] | self.terms[index]

    def update(self, fresher: Reading) -> None:
        """Take what ``fresher`` read again of some items."""
        self.bands.update(fresher.bands)
        self.terms.update(fresher.terms)
        self.candidates.update(fresher.candidates)


@dataclass(frozen=True, slots=True)
class Written:
    """What the placement write answered: ``ok`` (``sources`` per item), ``busy`` (a
    correction runs), ``stale`` (read everything again), ``unchecked`` (send the read keys),
    or ``conflict`` (read ``again`` again); ``at``, the placement count it saw."""

    outcome: str
    at: int
    sources: tuple[int, ...] = ()
    again: tuple[int, ...] = ()

    @classmethod
    def of(cls, reply: Sequence[Any]) -> Written:
        outcome, at, *rest = reply
        outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
        values = tuple(int(x) for x in rest)
        if outcome == "ok":
            return cls(outcome, int(at), sources=values)
        return cls(outcome, int(at), again=values)
