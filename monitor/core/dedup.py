"""Duplicates without I/O: canonical URLs, boilerplate removal, versioned fingerprints.

Level 1 (seen) needs a canonical URL: scheme and host lower case, default ports, fragments and
tracking parameters gone, query sorted. Level 2 (duplicate) compares the articles themselves:
boilerplate lines are removed, the rest is normalized and cut into word shingles, and two
fingerprints are computed: a MinHash signature (Jaccard similarity and, with the shingle counts,
containment, so a teaser matches its full text) and a SimHash (kept for comparison; see
docs/dedup.md for why MinHash decides). Fingerprints carry a version prefix (``v1:``) so the
scheme can change without mixing old and new values.
"""

from __future__ import annotations

import base64
import operator
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import xxhash

from monitor.core.text import normalize

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from datasketch import LeanMinHash, MinHash

VERSION = "v1"
SHINGLE = 4  # words per shingle
PERMUTATIONS = 128
BANDS = 32  # LSH: 32 bands of 4 rows find pairs with Jaccard >= ~0.5 with high probability
ROWS = PERMUTATIONS // BANDS

# --- level 1: canonical URLs --------------------------------------------------------------------

_TRACKING = re.compile(
    r"^(utm_[a-z_]+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|_ga|_gl|yclid|igshid"
    r"|ref_src|ref_url|cmpid|cmp|icid|ocid|ncid|sr_share|share|smid|s_cid|at_medium|at_campaign"
    r"|__twitter_impression|rss|feed|xtor)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str | None:
    """The form of ``url`` that copies of one entry share; None for what is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING.match(key)
    )
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    return urlunsplit((scheme, host, path, urlencode(query), ""))


# --- level 2: fingerprints ----------------------------------------------------------------------


def shingles(text: str | Sequence[str], size: int = SHINGLE) -> list[bytes]:
    """Overlapping runs of ``size`` normalized words (a short text gives one shingle); pass the
    words when they are already tokenized."""
    words = normalize(text).split() if isinstance(text, str) else text
    if len(words) <= size:
        return [" ".join(words).encode()] if words else []
    # Each run is the words at the same position of ``size`` shifted views, joined in C.
    runs = map(" ".join, zip(*(words[shift:] for shift in range(size)), strict=False))
    return list(map(str.encode, runs))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What level 2 compares: a MinHash signature, a SimHash, and the shingle count."""

    minhash: tuple[int, ...]
    simhash: int
    size: int

    def encode(self) -> str:
        """``v1:<size>:<simhash hex>:<base64 signature>`` for storing in Redis."""
        packed = np.asarray(self.minhash, dtype=np.uint32).tobytes()
        signature = base64.b64encode(packed).decode()
        return f"{VERSION}:{self.size}:{self.simhash:016x}:{signature}"

    @classmethod
    def decode(cls, value: str) -> Fingerprint | None:
        """None for a fingerprint of another version (it cannot be compared with this one)."""
        parts = value.split(":")
        if len(parts) != 4 or parts[0] != VERSION:
            return None
        raw = np.frombuffer(base64.b64decode(parts[3]), dtype=np.uint32)
        return cls(tuple(int(v) for v in raw), int(parts[2], 16), int(parts[1]))

    def bands(self) -> list[str]:
        """LSH band keys: two signatures that agree on all rows of any band are candidates.
        A text too short to be a duplicate has none (it would share its bands with every other
        empty or one-line text)."""
        if self.size < MIN_SHINGLES:
            return []
        rows = np.asarray(self.minhash, dtype=np.uint32).reshape(BANDS, ROWS)
        return [
            f"{VERSION}:{band}:{xxhash.xxh3_64_hexdigest(row.tobytes())}"
            for band, row in enumerate(rows)
        ]


_EMPTY = Fingerprint((0xFFFFFFFF,) * PERMUTATIONS, 0, 0)


# The permutations of seed 1, drawn once: every item shares them (drawing them was a sixth of
# the cost of a fingerprint).
_TEMPLATE = MinHash(num_perm=PERMUTATIONS, seed=1)
_SHARED: dict[str, Any] = {"permutations": _TEMPLATE.permutations}
if hasattr(_TEMPLATE, "scheme"):  # datasketch 2 asks which scheme drew them
    _SHARED["scheme"] = _TEMPLATE.scheme


def fingerprint(text: str | Sequence[str], *, with_simhash: bool = False) -> Fingerprint:
    """Fingerprint of an article's text (boilerplate already removed) or its normalized words.
    The SimHash is only computed when asked for: it is kept for measuring, MinHash decides."""
    pieces = shingles(text)
    if not pieces:
        return _EMPTY
    minhash = MinHash(num_perm=PERMUTATIONS, hashfunc=xxhash.xxh32_intdigest, **_SHARED)
    minhash.update_batch(pieces)
    signature = tuple(LeanMinHash(minhash).hashvalues.tolist())
    return Fingerprint(signature, simhash(pieces) if with_simhash else 0, len(set(pieces)))


def simhash(pieces: Sequence[bytes]) -> int:
    """64-bit SimHash of the shingles: each bit is the majority vote of the shingle hashes."""
    hashes = np.fromiter((xxhash.xxh3_64_intdigest(p) for p in pieces), np.uint64, len(pieces))
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    votes = bits.sum(axis=0, dtype=np.int64) * 2 > len(pieces)
    return int(np.packbits(votes, bitorder="little").view(np.uint64)[0])


def jaccard(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    if not a.size or not b.size:
        return 0.0
    agree: int = sum(map(operator.eq, a.minhash, b.minhash))  # counted in C
    return agree / PERMUTATIONS


def containment(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated share of the smaller text's shingles found in the larger one."""
    j = jaccard(a, b)
    small, large = sorted((a.size, b.size))
    if not small:
        return 0.0
    return min(1.0, j * (small + large) / ((1 + j) * small))


def hamming(a: Fingerprint, b: Fingerprint) -> int:
    return (a.simhash ^ b.simhash).bit_count()


# Thresholds chosen on tests/data/dedup (docs/dedup.md): a pair is a duplicate when the texts
# are nearly the same, or when the shorter one (a teaser, at least MIN_TEASER shingles) is almost
# wholly inside the longer.
DUPLICATE_JACCARD = 0.55
DUPLICATE_CONTAINMENT = 0.85
MIN_TEASER = 25
MIN_SHINGLES = 8  # "Comments", an empty body: such items are never duplicates by their text
SIMHASH_DISTANCE = 12


def is_duplicate(a: Fingerprint, b: Fingerprint) -> bool:
    """Level 2 by MinHash: the same article, syndicated, reformatted, updated or teased.
    Texts of fewer than ``MIN_SHINGLES`` shingles say too little to be called the same."""
    if min(a.size, b.size) < MIN_SHINGLES:
        return False
    if jaccard(a, b) >= DUPLICATE_JACCARD:
        return True
    return min(a.size, b.size) >= MIN_TEASER and containment(a, b) >= DUPLICATE_CONTAINMENT


def is_duplicate_simhash(a: Fingerprint, b: Fingerprint) -> bool:
    """Level 2 by SimHash (fingerprints made ``with_simhash``), measured beside MinHash."""
    return bool(a.size and b.size) and hamming(a, b) <= SIMHASH_DISTANCE
