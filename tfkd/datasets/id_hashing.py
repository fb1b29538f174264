"""Hashed ids: a column with too many values for a vocabulary.

A column given `hash_buckets=N` (`Feature`, `hash_columns=` on the loaders,
`--hash-column NAME=N` on the CLI) keeps no list of its values: a value's
id is `1 + Fingerprint64(key) mod N`, where the key is the UTF-8 text of
`vocabulary.canonical(value)` (`"007"` and `7` are both `"7"`), and a
missing cell is id 0. Different values may share an id; with `N` a few
times the number of values, few do.

Fingerprint64 is FarmHash's `Fingerprint64` (farmhashna), the hash of
`tf.strings.to_hash_bucket_fast` and of Guava's
`Hashing.farmHashFingerprint64()`: training hashes in tf, an Android app
with Guava, and this module (and `export/run_tflite.py`) in pure Python,
all to the same id. Its value is fixed by FarmHash, not by the platform.
"""

import struct

from tfkd.datasets.vocabulary import MISSING
from tfkd.datasets.vocabulary import canonical

_MASK = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def hash_key(value):
    """The bytes a raw value is hashed by, or None for a missing cell.

    Args:
        value: a cell, of any type `vocabulary.canonical` takes.

    Returns:
        bytes, or None.

    Example:

    ```python
    hash_key(" 007")  # b"7"
    ```
    """
    key = canonical(value)
    return None if key is MISSING else str(key).encode("utf-8")


def hashed_id(value, buckets):
    """The id of one raw value in a column of `buckets` hash buckets.

    Args:
        value: a cell, of any type `vocabulary.canonical` takes.
        buckets: int >= 1.

    Returns:
        int in `[1, buckets]`, or 0 for a missing cell.

    Example:

    ```python
    hashed_id("session-9f3a", 1000)  # the same id tf gives it in training
    ```
    """
    key = hash_key(value)
    return 0 if key is None else 1 + fingerprint64(key) % buckets


def fingerprint64(data):
    """FarmHash Fingerprint64 of `data`, as an unsigned 64-bit int.

    Args:
        data: bytes.

    Returns:
        int in `[0, 2**64)`.

    Example:

    ```python
    fingerprint64(b"u42") % 100  # == tf.strings.to_hash_bucket_fast("u42", 100)
    ```
    """
    size = len(data)
    if size <= 16:
        return _hash_0_to_16(data)
    if size <= 32:
        return _hash_17_to_32(data)
    if size <= 64:
        return _hash_33_to_64(data)
    return _hash_long(data)


def _u64(data, at):
    return struct.unpack_from("<Q", data, at)[0]


def _u32(data, at):
    return struct.unpack_from("<I", data, at)[0]


def _rotate(value, shift):
    return ((value >> shift) | (value << (64 - shift))) & _MASK


def _shift_mix(value):
    return value ^ (value >> 47)


def _mix16(u, v, mul):
    a = ((u ^ v) * mul) & _MASK
    a ^= a >> 47
    b = ((v ^ a) * mul) & _MASK
    b ^= b >> 47
    return (b * mul) & _MASK


def _hash_0_to_16(s):
    size = len(s)
    if size >= 8:
        mul = _K2 + size * 2
        a = (_u64(s, 0) + _K2) & _MASK
        b = _u64(s, size - 8)
        c = (_rotate(b, 37) * mul + a) & _MASK
        d = ((_rotate(a, 25) + b) * mul) & _MASK
        return _mix16(c, d, mul)
    if size >= 4:
        mul = _K2 + size * 2
        return _mix16(size + (_u32(s, 0) << 3), _u32(s, size - 4), mul)
    if size:
        y = s[0] + (s[size >> 1] << 8)
        z = size + (s[size - 1] << 2)
        return (_shift_mix(((y * _K2) ^ (z * _K0)) & _MASK) * _K2) & _MASK
    return _K2


def _hash_17_to_32(s):
    size = len(s)
    mul = _K2 + size * 2
    a = (_u64(s, 0) * _K1) & _MASK
    b = _u64(s, 8)
    c = (_u64(s, size - 8) * mul) & _MASK
    d = (_u64(s, size - 16) * _K2) & _MASK
    return _mix16((_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK,
                  (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)


def _hash_33_to_64(s):
    size = len(s)
    mul = _K2 + size * 2
    a = (_u64(s, 0) * _K2) & _MASK
    b = _u64(s, 8)
    c = (_u64(s, size - 8) * mul) & _MASK
    d = (_u64(s, size - 16) * _K2) & _MASK
    y = (_rotate((a + b) & _MASK, 43) + _rotate(c, 30) + d) & _MASK
    z = _mix16(y, (a + _rotate((b + _K2) & _MASK, 18) + c) & _MASK, mul)
    e = (_u64(s, 16) * mul) & _MASK
    f = _u64(s, 24)
    g = ((y + _u64(s, size - 32)) * mul) & _MASK
    h = ((z + _u64(s, size - 24)) * mul) & _MASK
    return _mix16((_rotate((e + f) & _MASK, 43) + _rotate(g, 30) + h) & _MASK,
                  (e + _rotate((f + a) & _MASK, 18) + g) & _MASK, mul)


def _weak32(s, at, a, b):
    # Two 64-bit halves from 32 bytes of `s` and two seeds.
    w, x, y, z = (_u64(s, at + 8 * i) for i in range(4))
    a = (a + w) & _MASK
    b = _rotate((b + a + z) & _MASK, 21)
    c = a
    a = (a + x + y) & _MASK
    b = (b + _rotate(a, 44)) & _MASK
    return (a + z) & _MASK, (b + c) & _MASK


def _hash_long(s):
    size = len(s)
    seed = 81
    x = seed
    y = (seed * _K1 + 113) & _MASK
    z = (_shift_mix((y * _K2 + 113) & _MASK) * _K2) & _MASK
    v = w = (0, 0)
    x = (x * _K2 + _u64(s, 0)) & _MASK
    end = ((size - 1) // 64) * 64
    last64 = end + ((size - 1) & 63) - 63
    at = 0
    while True:
        x, y, z, v, w = _round(s, at, x, y, z, v, w, _K1, 1)
        at += 64
        if at == end:
            break
    mul = _K1 + ((z & 0xFF) << 1)
    w = ((w[0] + ((size - 1) & 63)) & _MASK, w[1])
    v = ((v[0] + w[0]) & _MASK, v[1])
    w = ((w[0] + v[0]) & _MASK, w[1])
    x, y, z, v, w = _round(s, last64, x, y, z, v, w, mul, 9)
    return _mix16(
        (_mix16(v[0], w[0], mul) + _shift_mix(y) * _K0 + z) & _MASK,
        (_mix16(v[1], w[1], mul) + x) & _MASK, mul)


def _round(s, at, x, y, z, v, w, mul, times):
    # One 64-byte step of the long-input loop; the last one uses its own
    # multiplier and weights `w[1]` and `v[0]` by 9.
    x = (_rotate((x + y + v[0] + _u64(s, at + 8)) & _MASK, 37) * mul) & _MASK
    y = (_rotate((y + v[1] + _u64(s, at + 48)) & _MASK, 42) * mul) & _MASK
    x ^= (w[1] * times) & _MASK
    y = (y + v[0] * times + _u64(s, at + 40)) & _MASK
    z = (_rotate((z + w[0]) & _MASK, 33) * mul) & _MASK
    v = _weak32(s, at, (v[1] * mul) & _MASK, (x + w[0]) & _MASK)
    w = _weak32(s, at + 32, (z + w[1]) & _MASK,
                (y + _u64(s, at + 16)) & _MASK)
    return z, y, x, v, w
