"""What a user's Keras model declares: its inputs by name, its output head.

The Distiller, the exporter and the evaluation helpers all feed models and
read their outputs through these functions, so a model built by hand
(plain `keras.layers.Embedding`, dict inputs, any head) is treated the same
way everywhere.
"""

import keras

from tfkd._internal import compat as _compat

PROBABILITY_ACTIVATIONS = ("sigmoid", "softmax", "log_softmax")
# Operations that only move values around: a probability stays one.
_SHAPE_ONLY_LAYERS = (
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Identity,
)
_SHAPE_ONLY_OPS = ("Reshape", "Squeeze", "ExpandDims", "Cast", "Identity")
_PROBABILITY_OPS = {
    "Sigmoid": "sigmoid",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
}


def input_structure(model):
    """The structure of named inputs a model declares, or None.

    Args:
        model: `keras.Model`.

    Returns:
        A dict, list or single `KerasTensor` mirroring how the model was
        built (`keras.Model(inputs={...})`, `[...]` or one input), or None
        for a subclassed model that declares no inputs.

    Example:

    ```python
    inputs = input_structure(model)   # {"user_id": <KerasTensor ...>}
    ```
    """
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = inputs
    if isinstance(structure, (list, tuple)) and len(structure) == 1:
        return structure[0]
    return structure


def input_names(model):
    """Names of the inputs a model declares, in order, or None.

    Args:
        model: `keras.Model`.

    Returns:
        A list of str, or None for a model that declares no inputs.
    """
    structure = input_structure(model)
    if structure is None:
        return None
    if isinstance(structure, dict):
        return list(structure)
    return [tensor.name for tensor in keras.tree.flatten(structure)]


def select_inputs(model, features, role="model"):
    """Picks from a feature dict exactly the inputs `model` declares.

    Keras matches a dict of features to a list-built model by position once
    the dict holds keys the model does not take, so a student that reads
    fewer columns than its teacher would silently embed the wrong ones.
    Selecting by name, in the structure the model was built with, rules
    that out; extra keys are ignored.

    Args:
        model: `keras.Model`. The model about to be called.
        features: a dict of name to tensor or array, or anything else
            (returned unchanged: a model with one tensor input, a
            subclassed model that reads the dict itself).
        role: str. What the model is ("teacher", "student"), for messages.
            Defaults to `"model"`.

    Returns:
        The features in the model's input structure.

    Raises:
        ValueError: If `features` lacks an input the model declares.

    Example:

    ```python
    batch = {"user_id": u, "item_id": i, "genres": g}
    logits = student(select_inputs(student, batch, "student"))
    ```
    """
    if not isinstance(features, dict):
        return features
    structure = input_structure(model)
    if structure is None:
        return features
    names = input_names(model)
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(
            f"The {role} '{model.name}' takes inputs {names}, but the data "
            f"has no {missing}. Add the missing feature(s) to the data or "
            "name the model's `keras.Input(name=...)` after a column it "
            f"has. Received features: {sorted(features)}"
        )
    if isinstance(structure, dict):
        return {name: features[name] for name in structure}
    if isinstance(structure, (list, tuple)):
        return [features[name] for name in names]
    return features[names[0]]


def probability_activation(model):
    """The sigmoid or softmax a model applies to its logits, if any.

    Looks through the last operation of a Functional or Sequential model
    (an `activation=` argument, an `Activation` or `Softmax` layer, or a
    `keras.ops.sigmoid`/`softmax` call), skipping operations that only
    reshape, and into nested models. A subclassed model is judged by its
    last layer.

    Args:
        model: `keras.Model`.

    Returns:
        `"sigmoid"`, `"softmax"`, `"log_softmax"`, or None for logits.

    Example:

    ```python
    head = keras.layers.Dense(1, activation="sigmoid")
    probability_activation(keras.Sequential([keras.Input((4,)), head]))
    # "sigmoid"
    ```
    """
    outputs = _outputs(model)
    if outputs is None:
        layers = getattr(model, "layers", None)
        return _activation_of(layers[-1]) if layers else None
    if len(outputs) != 1:
        return None
    return _activation_of_tensor(outputs[0])


def _outputs(model):
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        return None
    return outputs or None


def _activation_of_tensor(tensor):
    operation, inputs = _compat.producer(tensor)
    while operation is not None:
        found = _activation_of(operation)
        if found or not is_shape_only(operation) or len(inputs) != 1:
            return found
        operation, inputs = _compat.producer(inputs[0])
    return None


def _activation_of(operation):
    if isinstance(operation, keras.Model):
        return probability_activation(operation)
    if isinstance(operation, keras.layers.Softmax):
        return "softmax"
    name = _PROBABILITY_OPS.get(type(operation).__name__)
    if name:
        return name
    activation = getattr(operation, "activation", None)
    name = getattr(activation, "__name__", None)
    return name if name in PROBABILITY_ACTIVATIONS else None


def is_shape_only(operation):
    """Whether an operation only reshapes or casts its one input.

    Args:
        operation: a Keras layer or `keras.ops` operation.

    Returns:
        bool.
    """
    return isinstance(operation, _SHAPE_ONLY_LAYERS) or (
        type(operation).__name__ in _SHAPE_ONLY_OPS
    )
