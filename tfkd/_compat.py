"""Every use of a private Keras / TensorFlow / TFMOT internal, with why.

Public APIs do not expose these; keeping them here means a version bump
that changes one breaks one function, named in the failing test.
"""


def producer(tensor):
    """The operation that produced a symbolic tensor and its inputs.

    Keras has no public way to walk a Functional graph backwards from an
    output; `_keras_history` and `_inbound_nodes` are what
    `keras.Model.summary` and `plot_model` use.

    Args:
        tensor: a `KerasTensor` from a Functional model.

    Returns:
        `(operation, input_tensors)`, or `(None, [])` for a graph input
        or a tensor with no history.
    """
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, []
    operation = history.operation
    node = operation._inbound_nodes[history.node_index]
    return operation, list(node.input_tensors)
