"""Makes unknown ids safe in an exported model, without rebuilding it.

A plain `keras.layers.Embedding` looks ids up with `keras.ops.take`: on
LiteRT an id past the table fails the GATHER ("gather index out of
bounds"), and a negative id reads a row from the end of the table. Before
conversion, every input whose ids reach an Embedding unchanged
(directly, or through reshapes and casts, also inside nested models) gets
the range mapping of `tfkd.models.feature_embedding.safe_ids`:

```
safe(id) = id if 0 <= id < input_dim else 0        # then table[safe(id)]
```

so an unknown id scores exactly like id 0, everywhere the model reads
that input. The model handed to the converter maps the ids once, at the
inputs, then calls a clone of the user's model (`keras.models.clone_model`
reusing the user's layers, so the weights are the same variables) in
which those lookups gather directly: the ids are known to be in range,
so Keras' fix for negative ids (LESS, ADD, SELECT_V2 per lookup) goes.
Measured on the 7-feature recommender of tests/test_export.py with plain
Embeddings (32 LiteRT operators, 350,496 bytes unmapped): a wrapper that
maps each input and calls the model as is, 60 operators and 353,472
bytes; the same with one stacked mapping for all inputs, 45 and 352,864;
mapping inside the clone before each Keras lookup, 60; mapping once and
gathering directly, 39 and 351,144 bytes. An input that feeds tables of
different sizes is mapped at each lookup to that table's size.

An Embedding whose ids go through anything else first (the user's own
mapping, `FeatureEmbedding`, a hash, arithmetic) is left alone, and so
is a model that maps its ids itself (`tfkd.models.FeatureEmbedding`): the
exporter then only checks on LiteRT that out-of-range ids score like id
0. With `mask_zero=True`, id 0 is padding: the mask is computed from the
mapped ids, so an unknown id is masked out like padding, which is still
exactly how id 0 scores.
"""

import keras
from keras import ops

from tfkd._internal import compat as _compat
from tfkd._internal import model_utils
from tfkd.models.feature_embedding import FeatureEmbedding
from tfkd.models.feature_embedding import gather_rows
from tfkd.models.feature_embedding import safe_ids

# Layers that look ids up in a table (an app's unknown ids reach them).
_LOOKUP_LAYERS = (keras.layers.Embedding, FeatureEmbedding)


def map_unknown_ids(model):
    """Returns `model` with every directly fed Embedding made id-safe.

    Args:
        model: `keras.Model`. A Functional or Sequential model.

    Returns:
        `(export_model, mapped)`: the model to convert (the same object
        when nothing needed mapping) and a dict of input name to the
        vocabulary size (`input_dim`) its ids were mapped to.

    Example:

    ```python
    export_model, mapped = map_unknown_ids(model)   # {"item_id": 200}
    ```
    """
    functional = _as_functional(model)
    if functional is None:
        return model, {}
    names = _input_names_by_tensor(functional)
    flat = _flat_inputs(functional)
    sizes = {}
    _collect_lookup_sizes(
        functional, {id(t): names[id(t)] for t in flat}, sizes
    )
    if not sizes:
        return model, {}
    at_input = {
        name: found[0] for name, found in sizes.items() if len(found) == 1
    }
    clone = _clone(
        functional, [names[id(t)] for t in flat], at_input, cache={}
    )
    inputs = keras.tree.map_structure(_new_input, functional.input)
    new_names = _input_names_by_tensor_of(inputs)
    mapped_inputs = keras.tree.map_structure(
        lambda t: (
            map_ids(t, at_input[new_names[id(t)]])
            if new_names[id(t)] in at_input else t
        ),
        inputs,
    )
    wrapper = keras.Model(inputs, clone(mapped_inputs), name=model.name)
    return wrapper, {
        name: found[0] if len(found) == 1 else found
        for name, found in sizes.items()
    }


def embedding_sizes(model):
    """`{input name: smallest input_dim}` of the Embeddings fed an input.

    Args:
        model: `keras.Model`.

    Returns:
        dict; inputs no plain Embedding reads directly are left out.

    Example:

    ```python
    embedding_sizes(model)   # {"user": 1001, "track": 301}
    ```
    """
    functional = _as_functional(model)
    if functional is None:
        return {}
    names = _input_names_by_tensor(functional)
    sizes = {}
    _collect_lookup_sizes(
        functional, {id(t): names[id(t)] for t in _flat_inputs(functional)},
        sizes,
    )
    return {name: min(found) for name, found in sizes.items()}


def lookup_input_names(model):
    """Integer inputs from which an embedding lookup can be reached.

    These are the inputs an app sends ids in; an integer input that
    reaches no lookup (a count, a bucket) is not one. A model without a
    graph to walk is judged by dtype alone.

    Args:
        model: `keras.Model`.

    Returns:
        A sorted list of input names.
    """
    functional = _as_functional(model)
    integer = integer_input_names(model)
    if functional is None:
        return integer
    names = _input_names_by_tensor(functional)
    reached = {names[key] for key in _lookup_tensor_ids(functional)}
    return sorted(reached & set(integer))


def integer_input_names(model):
    """Names of the model's integer inputs, sorted."""
    functional = _as_functional(model)
    if functional is None:
        return sorted(
            t.name for t in model.inputs if "int" in str(t.dtype)
        )
    names = _input_names_by_tensor(functional)
    return sorted(
        names[id(t)] for t in _flat_inputs(functional)
        if "int" in str(t.dtype)
    )


def map_ids(ids, vocabulary_size):
    """`safe_ids`, keeping the dtype of ids that are not int32.

    int32 ids go through `feature_embedding.safe_ids` itself. Other ids (int64,
    or floats from a `keras.Input` left at its default dtype) are tested
    and replaced in their own dtype: an int64 id of 2**32 + 5 stays
    unknown rather than wrapping onto id 5, and whatever else reads the
    input still gets the dtype it was built for.

    Args:
        ids: tensor of ids.
        vocabulary_size: int.

    Returns:
        A tensor of the dtype of `ids`, values in `[0, vocabulary_size)`.
    """
    if ids.dtype == "int32":
        return safe_ids(ids, vocabulary_size)
    valid = ops.logical_and(
        ops.greater_equal(ids, 0), ops.less(ids, vocabulary_size)
    )
    return ops.where(valid, ids, ops.zeros((), ids.dtype))


class SafeLookup(keras.layers.Layer):
    """Looks ids already in range up in an Embedding's table: one GATHER.

    Used only in the model handed to the converter, never saved.

    Args:
        embedding: `keras.layers.Embedding`. The table to read (its
            variable, not a copy).
    """

    def __init__(self, embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def call(self, ids):
        if ids.dtype not in ("int32", "int64"):
            # What Keras' Embedding does with float ids, too.
            ids = ops.cast(ids, "int32")
        rows = gather_rows(self.embedding.embeddings, ids)
        # Read at trace time, so an export under a float32 override of a
        # mixed-precision policy gathers float32.
        return ops.cast(rows, self.embedding.compute_dtype)

    def compute_output_spec(self, ids):
        return self.embedding.compute_output_spec(ids)


def _as_functional(model):
    if _compat.is_functional(model):
        return model
    if isinstance(model, keras.Sequential) and model.built:
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return None


def _flat_inputs(model):
    return keras.tree.flatten(model.input)


def _input_names_by_tensor(model):
    return _input_names_by_tensor_of(model.input)


def _input_names_by_tensor_of(structure):
    if isinstance(structure, dict):
        return {id(t): name for name, t in structure.items()}
    return {id(t): t.name for t in keras.tree.flatten(structure)}


def _new_input(tensor):
    return keras.Input(
        batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name
    )


def _collect_lookup_sizes(model, origin_of, sizes):
    """Adds `{outer input name: sorted input_dims}` of its Embeddings.

    Only Embeddings fed an input (up to reshapes and casts) count, seen
    through nested models; `origin_of` maps the model's input tensors to
    the outermost input they are, or None.
    """
    for operation, inputs in _graph_nodes(model):
        nested = _as_functional(operation)
        if nested is not None:
            nested_inputs = _flat_inputs(nested)
            if len(inputs) == len(nested_inputs):
                inner = {
                    id(t): origin_of.get(_pass_through_source(outer))
                    for t, outer in zip(nested_inputs, inputs, strict=True)
                }
                _collect_lookup_sizes(nested, inner, sizes)
        elif isinstance(operation, keras.layers.Embedding):
            origin = origin_of.get(_pass_through_source(inputs[0]))
            if origin is not None:
                found = sizes.setdefault(origin, [])
                sizes[origin] = sorted(set(found) | {operation.input_dim})


def _clone(model, origins, at_input, cache):
    """Clones `model` on its own layers, with id-safe lookups.

    `origins[i]` names the outermost input that the model's i-th input
    is (up to reshapes), or None. Ids of inputs in `at_input` are mapped
    before the model (so a `mask_zero` mask, computed from the ids
    themselves, masks an unknown id like padding): their lookups gather
    directly. An input feeding tables of different sizes is mapped at
    each lookup instead.
    """
    inputs = keras.tree.map_structure(_new_input, model.input)
    origin_of = {
        id(t): origin for t, origin in zip(keras.tree.flatten(inputs),
                                           origins, strict=True)
    }

    def call(layer, *args, **kwargs):
        nested = _as_functional(layer)
        if nested is not None:
            nested_origins = _nested_origins(nested, args, origin_of)
            key = (id(layer), tuple(nested_origins))
            if key not in cache:
                cache[key] = _clone(nested, nested_origins, at_input, cache)
            return cache[key](*args, **kwargs)
        if isinstance(layer, keras.layers.Embedding) and len(args) == 1:
            origin = origin_of.get(_pass_through_source(args[0]))
            if origin in at_input:
                return _lookup(layer, args[0])
            if origin is not None:
                return _lookup(layer, map_ids(args[0], layer.input_dim))
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer,
        call_function=call,
    )


def _nested_origins(nested, args, origin_of):
    nested_inputs = _flat_inputs(nested)
    passed = keras.tree.flatten(args[0] if len(args) == 1 else args)
    if len(passed) != len(nested_inputs):
        return [None] * len(nested_inputs)
    return [origin_of.get(_pass_through_source(t)) for t in passed]


def _lookup(layer, safe_ids_tensor):
    plain = (
        type(layer) is keras.layers.Embedding
        and keras.backend.backend() == "tensorflow"
        and not layer.mask_zero
        and not layer.lora_enabled
        and layer.quantization_mode is None
    )
    # Anything else (a mask, LoRA, a quantized table) keeps Keras' own
    # call on the mapped ids.
    if plain:
        return SafeLookup(layer)(safe_ids_tensor)
    return layer(safe_ids_tensor)


def _pass_through_source(tensor):
    """id of the graph input `tensor` is up to reshapes/casts, or None."""
    while True:
        operation, inputs = _compat.producer(tensor)
        if isinstance(operation, keras.layers.InputLayer):
            return id(tensor)
        # Reshapes and casts pass ids through unchanged.
        if not model_utils.is_shape_only(operation) or len(inputs) != 1:
            return None
        tensor = inputs[0]



def _looks_up_ids(operation):
    if isinstance(operation, _LOOKUP_LAYERS):
        return True
    if not isinstance(operation, keras.layers.Layer):
        return False
    return any(
        isinstance(layer, _LOOKUP_LAYERS)
        for layer in _compat.all_layers(operation)
    )


def _lookup_tensor_ids(model):
    """ids of the model's input tensors that reach an id lookup."""
    found, upstream = set(), {}
    for operation, inputs in _graph_nodes(model):
        nested = _as_functional(operation)
        if nested is not None:
            reached = _lookup_tensor_ids(nested)
            nested_inputs = _flat_inputs(nested)
            feeding = inputs
            if len(inputs) == len(nested_inputs):
                feeding = [
                    t for t, inner in zip(inputs, nested_inputs, strict=True)
                    if id(inner) in reached
                ]
        elif _looks_up_ids(operation):
            feeding = inputs
        else:
            continue
        for tensor in feeding:
            found |= _graph_inputs_above(tensor, upstream)
    return found


def _graph_nodes(model):
    nodes, seen, stack = [], set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        operation, inputs = _compat.producer(tensor)
        if operation is not None and inputs:
            nodes.append((operation, inputs))
            stack.extend(inputs)
    return nodes


def _graph_inputs_above(tensor, cache):
    if id(tensor) in cache:
        return cache[id(tensor)]
    operation, inputs = _compat.producer(tensor)
    if isinstance(operation, keras.layers.InputLayer):
        result = {id(tensor)}
    else:
        result = set()
        for parent in inputs:
            result |= _graph_inputs_above(parent, cache)
    cache[id(tensor)] = result
    return result
