"""Type aliases shared by tfkd signatures."""

from typing import Any
from typing import Union

import numpy as np

# Backend tensors (tf.Tensor under the TensorFlow backend) or arrays.
Tensor = Any
Shape = Union[tuple[int | None, ...], list[int | None]]
ArrayLike = Union[np.ndarray, Tensor]
