"""The app's raw values as tfkd's model ids: the rules an app ports.

Imports only NumPy and the standard library; `run_tflite.py` uses it, and
it is the reference for an app's own code (`README.md`, "Raw ids"). It
mirrors `tfkd/datasets/vocabulary.py` (the key of a value) and
`tfkd/datasets/id_hashing.py` (hashed ids); tfkd's tests keep them in
step.

A feature of the sidecar's `feature_spec` maps raw values one of two ways:
- `vocabulary`: value `vocabulary[i]` is id `i + 1`; any other value, or
  null, is id 0 (unknown);
- `hash_buckets` N: a value is id `1 + Fingerprint64(key) mod N`, null 0.
The key of a value: whole numbers of up to 18 digits compare as numbers
(`"007"` is 7), everything else as text with surrounding spaces removed.
"""

import math
import re
import struct

import numpy as np

WHOLE_NUMBER = re.compile(r"[+-]?\d+")
MAX_WHOLE = 10**18
_MASK = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F


def mappings(sidecar):
    """`{feature: (mapping, separator)}` of the sidecar's features that map
    raw values: `mapping` a `{key: id}` dict (a vocabulary) or an int (the
    hash buckets); `separator` None unless a list is sent as one string."""
    spec = sidecar.get("feature_spec") or {}
    found = {}
    for f in spec.get("features", []):
        if f.get("vocabulary") is not None:
            mapping = {key: i + 1 for i, key in enumerate(f["vocabulary"])}
        elif f.get("hash_buckets") is not None:
            mapping = int(f["hash_buckets"])
        else:
            continue
        found[f["name"]] = (mapping, f.get("separator"))
    return found


def lookup(values, mapping, separator=None):
    """Raw values -> ids: unknown or null -> 0.

    Args:
        values: a value or a list of values, one per request. A list
            feature takes a list of values per request, or with a
            `separator` one string (`"Action|Comedy"`); blank values are
            dropped.
        mapping: `{key: id}` (a vocabulary) or int (hash buckets).
        separator: str or None.

    Returns:
        list of ids (a list of ids per request for a list feature).
    """
    if isinstance(mapping, int):
        def one(value):
            key = canonical(value)
            if key is None:
                return 0
            return 1 + fingerprint64(str(key).encode("utf-8")) % mapping
    else:
        text_keys = any(isinstance(key, str) for key in mapping)

        def one(value):
            key = canonical(value)
            if text_keys and key is not None:
                key = str(key)
            return mapping.get(key, 0)

    def row(value):
        if separator is not None and isinstance(value, str):
            value = value.split(separator)
        if isinstance(value, (list, tuple)):
            return [one(v) for v in value if canonical(v) is not None]
        return one(value)

    if not isinstance(values, (list, tuple, np.ndarray)):
        values = [values]
    return [row(v) for v in values]


def canonical(value):
    """The key of a raw value: an int, a str, or None (null)."""
    if value is None:
        return None
    if isinstance(value, (bool, int, np.integer)):
        return _whole(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return _whole(int(value))
        return repr(float(value))
    text = str(value).strip()
    if not text:
        return None
    return _whole(int(text)) if WHOLE_NUMBER.fullmatch(text) else text


def _whole(number):
    return number if abs(number) < MAX_WHOLE else str(number)


def fingerprint64(data):
    """FarmHash Fingerprint64 of `data` (bytes), an unsigned 64-bit int:
    tf.strings.to_hash_bucket_fast's hash and Guava's
    `Hashing.farmHashFingerprint64()`."""
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
