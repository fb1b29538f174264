"""A seeded train / val / test split of rows that never sees them all.

Each row is keyed by its shard's position in name order and its position
among that shard's data rows (blank lines skipped), and the key is hashed
with the seed (SipHash, `tf.strings.to_hash_bucket_strong`). The hash alone
places the row, so every reader agrees, whatever order it reads in, and
each row lands in exactly one part. The fractions hold in expectation:
the counts vary by about the square root of the rows.
"""

import numpy as np
import tensorflow as tf

SPLIT_NAMES = ("train", "val", "test")
# Buckets of the hash: exact as float64, fine enough for any fraction.
HASH_BUCKETS = 2**52
# The hash key is an int64 attribute of the op.
MAX_SEED = 2**63 - 1


class RowSplit:
    """Places rows in train (0), val (1) or test (2) from a seeded hash.

    A row goes to test when its hash, read as a number `u` in [0, 1), is
    below `test_fraction`, to val when below `test_fraction +
    val_fraction`, else to train.

    Args:
        seed: int in [0, 2**63). The hash key.
        val_fraction: float. Expected share of rows in val.
        test_fraction: float. Expected share of rows in test.

    Raises:
        TypeError: if `seed` is not an int.
        ValueError: if `seed` is out of range.

    Example:

    ```python
    split = RowSplit(seed=42, val_fraction=0.1, test_fraction=0.1)
    split.codes(0, np.arange(5))  # e.g. [0, 0, 2, 0, 0]
    ```
    """

    def __init__(self, seed, val_fraction, test_fraction):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`seed` must be an int. Received: seed={seed!r}")
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(
                f"`seed` must be in [0, 2**63). Received: seed={seed}"
            )
        self.seed = int(seed)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)

    def codes(self, shard, rows):
        """Returns the part of each row: 0 train, 1 val, 2 test.

        Args:
            shard: int or scalar int tensor. The shard's position.
            rows: int64 array or tensor. Positions of the rows in it.

        Returns:
            int64 tensor shaped like `rows` (eager: `.numpy()` reads it).
        """
        keys = tf.strings.join([
            tf.strings.as_string(tf.cast(shard, tf.int64)),
            tf.strings.as_string(tf.cast(rows, tf.int64)),
        ], separator=":")
        buckets = tf.strings.to_hash_bucket_strong(
            keys, HASH_BUCKETS, key=[self.seed, 0]
        )
        u = tf.cast(buckets, tf.float64) / HASH_BUCKETS
        test = tf.cast(u < self.test_fraction, tf.int64)
        held_out = tf.cast(u < self.test_fraction + self.val_fraction,
                           tf.int64)
        return held_out + test
