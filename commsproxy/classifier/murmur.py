"""MurmurHash3 (x86, 32 bit) of many strings at once, as scikit-learn's feature hashing uses it.

HashingVectorizer and FeatureHasher put a token or a signal name in column
``abs(h) % n_features``, where ``h`` is the signed 32-bit MurmurHash3 of its UTF-8 bytes with
seed 0 (and give it the sign of ``h`` when ``alternate_sign``). Live scoring
(scoring_form.py) needs those columns without importing scikit-learn, so this computes the
same hash with numpy: the strings' 4-byte blocks side by side in one array, the block rounds
over all strings at once (strings sorted by length, so each round works on a prefix), the
tail and the finalisation vectorised too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["columns", "murmurhash3_32"]

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_M = np.uint32(5)
_N = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_INT_MIN = -(2**31)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix(k: np.ndarray) -> np.ndarray:
    k = k * _C1
    k = _rotl(k, 15)
    return k * _C2


def murmurhash3_32(keys: Sequence[bytes]) -> np.ndarray:
    """The signed MurmurHash3 (seed 0) of each of ``keys``, as int32."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=n)
    # Longest first: the block rounds then work on a shrinking prefix of the strings.
    order = np.argsort(-lengths, kind="stable")
    ordered = [keys[i] for i in order.tolist()]
    lengths = lengths[order]
    words = (lengths + 3) // 4  # blocks, the tail padded with zeros to a whole one
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(words[:-1], out=starts[1:])
    padded = b"".join(k + b"\0" * (-len(k) % 4) for k in ordered)
    blocks = np.frombuffer(padded, dtype="<u4").astype(np.uint32)
    full = lengths // 4
    h = np.zeros(n, dtype=np.uint32)
    with np.errstate(over="ignore"):
        rounds = int(full[0]) if n else 0
        # How many strings have more than j whole blocks, for each j (sorted: a prefix).
        active = np.searchsorted(-full, -np.arange(1, rounds + 1), side="right")
        for j in range(rounds):
            m = int(active[j])
            k = _mix(blocks[starts[:m] + j])
            x = h[:m] ^ k
            x = _rotl(x, 13)
            h[:m] = x * _M + _N
        tail = lengths % 4 != 0
        if tail.any():
            k = _mix(blocks[starts[tail] + full[tail]])
            h[tail] ^= k
        h ^= lengths.astype(np.uint32)
        h ^= h >> np.uint32(16)
        h *= _F1
        h ^= h >> np.uint32(13)
        h *= _F2
        h ^= h >> np.uint32(16)
    out = np.empty(n, dtype=np.int32)
    out[order] = h.view(np.int32)
    return out


def columns(names: Sequence[str], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Each name's column (int64) and sign (+1/-1 as float64), as scikit-learn hashes it."""
    h = murmurhash3_32([name.encode("utf-8") for name in names]).astype(np.int64)
    index = np.abs(h) % n_features
    # abs(-2**31) overflows in scikit-learn's int32; it defines the column as this instead.
    index[h == _INT_MIN] = (2147483647 - (n_features - 1)) % n_features
    sign = np.where(h >= 0, 1.0, -1.0)
    return index, sign
