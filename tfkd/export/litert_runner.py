"""Runs the `serving_default` signature of a `.tflite` file with LiteRT.

This module imports only NumPy and `ai_edge_litert`, never TensorFlow, so
that `export/run_tflite.py` (the device-side runner) can mirror it line for
line and the two cannot drift apart in how they feed a model.
"""

import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

SIGNATURE_KEY = "serving_default"
# Untimed calls before a latency measurement: the first invokes allocate.
LATENCY_WARMUP_RUNS = 10


class LiteRTRunner:
    """Calls the `serving_default` signature of a LiteRT model.

    Each call accepts any batch size: the LiteRT signature runner resizes
    its input tensors to the arrays it is given. Inputs are cast to the
    dtypes the signature declares (int32 ids), and a single request whose
    features lack the batch axis (a scalar id, a `(6,)` genres list) gets
    one.

    Args:
        model_path: str. Path to a `.tflite` file.
        num_threads: int. Interpreter threads. Defaults to `1`, which is
            what a single on-device request usually gets.

    Raises:
        ValueError: If the model has no `serving_default` signature.

    Example:

    ```python
    runner = LiteRTRunner("student.tflite")
    logits = runner({"user_id": [3], "item_id": [7], ...})["output_0"]
    ```
    """

    def __init__(self, model_path, num_threads=1):
        self.model_path = str(model_path)
        self.num_threads = num_threads
        self.interpreter = Interpreter(
            model_path=self.model_path, num_threads=num_threads
        )
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise ValueError(
                f"Expected a `{SIGNATURE_KEY}` signature in "
                f"{self.model_path}. Received: signatures="
                f"{sorted(signatures)}"
            )
        self._runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()

    @property
    def input_names(self):
        return sorted(self.input_details)

    @property
    def output_names(self):
        return sorted(self.output_details)

    def prepare(self, features):
        """Checks names and casts `features` to the signature's dtypes.

        Args:
            features: dict. Feature name to array-like.

        Returns:
            A dict of NumPy arrays with a batch axis, in signature dtypes.

        Raises:
            TypeError: If `features` is not a dict.
            ValueError: If names are missing or unknown, ranks are wrong,
                or batch sizes differ.
        """
        if not isinstance(features, dict):
            raise TypeError(
                "Expected `features` to be a dict of feature name to array. "
                f"Received: features={type(features).__name__}"
            )
        missing = sorted(set(self.input_details) - set(features))
        unknown = sorted(set(features) - set(self.input_details))
        if missing or unknown:
            raise ValueError(
                f"Expected exactly the inputs {self.input_names}. Received: "
                f"missing={missing}, unknown={unknown}"
            )
        prepared = {
            name: _with_batch_axis(name, features[name], details)
            for name, details in self.input_details.items()
        }
        sizes = {name: array.shape[0] for name, array in prepared.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"Expected one batch size for all inputs. Received: {sizes}"
            )
        return prepared

    def fixed_shape(self, features, fill=None):
        """A call with tensors sized once, as an app runs the model.

        An app allocates its input tensors once for the batch it sends
        (one request, or a whole catalogue) and then only copies inputs
        and invokes; `__call__` (the signature runner) resizes and
        re-allocates on every call, which costs more than the model
        itself for a small student. This uses its own interpreter, sized
        for `features`.

        Args:
            features: dict. One batch, as for `__call__`.
            fill: callable or None. Called with the dict of input arrays
                before each call, to write a request's values into them
                in place (e.g. ids looked up from an app's raw values).
                Defaults to `None`.

        Returns:
            A function of no arguments that sets the inputs, invokes and
            returns the outputs as a dict of NumPy arrays.

        Example:

        ```python
        call = runner.fixed_shape(request)
        logits = call()["output_0"]
        ```
        """
        prepared = self.prepare(features)
        interpreter = Interpreter(
            model_path=self.model_path, num_threads=self.num_threads
        )
        # Tensor indices are the file's, the same in every interpreter;
        # a signature runner here would pin the tensors against resizing.
        inputs = self.input_details
        for name, array in prepared.items():
            interpreter.resize_tensor_input(
                inputs[name]["index"], array.shape, strict=False
            )
        interpreter.allocate_tensors()
        feeds = [(inputs[name]["index"], array)
                 for name, array in prepared.items()]
        outputs = {name: detail["index"] for name, detail in
                   self.output_details.items()}

        def call():
            if fill is not None:
                fill(prepared)
            for index, array in feeds:
                interpreter.set_tensor(index, array)
            interpreter.invoke()
            return {name: interpreter.get_tensor(index)
                    for name, index in outputs.items()}

        return call

    def invoke_us_p50(self, features, runs):
        """Median microseconds of a fixed-shape call (`fixed_shape`).

        Args:
            features: dict. One batch, as for `__call__`.
            runs: int. Timed calls, after `LATENCY_WARMUP_RUNS` untimed.

        Returns:
            float.
        """
        return median_us(self.fixed_shape(features), runs)

    def latency_us_p50(self, features, runs):
        """Median microseconds of one `__call__` on `features`.

        Args:
            features: dict. One batch, as for `__call__`.
            runs: int. Timed calls, after `LATENCY_WARMUP_RUNS` untimed.

        Returns:
            float.
        """
        prepared = self.prepare(features)
        return median_us(lambda: self(prepared), runs)

    def __call__(self, features):
        """Runs the signature on one batch.

        Args:
            features: dict. Feature name to array-like, any batch size.

        Returns:
            A dict of output name to float NumPy array.
        """
        return self._runner(**self.prepare(features))


def median_us(call, runs):
    """Median microseconds of `call()` over `runs` timed calls, after
    `LATENCY_WARMUP_RUNS` untimed ones."""
    for _ in range(LATENCY_WARMUP_RUNS):
        call()
    timings = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = time.perf_counter_ns()
        call()
        timings[i] = time.perf_counter_ns() - start
    return float(np.median(timings) / 1000.0)


def _with_batch_axis(name, value, details):
    dtype = details["dtype"]
    array = np.asarray(value)
    if np.issubdtype(dtype, np.integer):
        if not np.issubdtype(array.dtype, np.integer):
            # A float id (3.7) would be truncated silently by astype.
            raise ValueError(
                f"Expected integer ids for input '{name}'. "
                f"Received: dtype={array.dtype}"
            )
        # Wrapping 2**40 to int32 could land on a valid id; clipping keeps
        # it out of range, which the model maps to 0 (unknown).
        limits = np.iinfo(dtype)
        array = np.clip(array, limits.min, limits.max)
    array = array.astype(dtype, copy=False)
    rank = len(details["shape_signature"])
    if array.ndim == rank - 1:
        array = array[np.newaxis, ...]
    if array.ndim != rank:
        raise ValueError(
            f"Expected input '{name}' with rank {rank} (batch first, shape "
            f"{details['shape_signature'].tolist()}). "
            f"Received: shape={array.shape}"
        )
    return array
