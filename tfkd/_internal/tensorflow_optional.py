"""Names that need TensorFlow, bound only where it is installed.

Keras on JAX runs tfkd's Distiller, losses and ranking builders without
TensorFlow (the GPU machines that benchmark it have none). The tf.data
loaders and the two-tower model need it: a package binds them with
`bind`, and its `__getattr__` from `missing_attribute` raises the
missing-TensorFlow error when one is used.
"""

import importlib


def is_missing_tensorflow(error):
    """Whether an import failed only because TensorFlow is not installed.

    Args:
        error: `ModuleNotFoundError`.

    Returns:
        bool.
    """
    return (error.name or "").startswith("tensorflow")


def bind(namespace, names):
    """Imports each name from its module into `namespace`, if it can.

    Args:
        namespace: dict. The package's `globals()`.
        names: dict of name to the module that defines it.

    Raises:
        ModuleNotFoundError: For any missing module other than TensorFlow.

    Example:

    ```python
    bind(globals(), {"two_tower": "tfkd.models.two_tower"})
    ```
    """
    for name, module in names.items():
        try:
            namespace[name] = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as error:
            if not is_missing_tensorflow(error):
                raise


def missing_attribute(package, names):
    """A module `__getattr__` that explains a name left unbound by `bind`.

    Args:
        package: str. The package's `__name__`, for the message.
        names: dict of name to module, as given to `bind`.

    Returns:
        A function for the package's `__getattr__`: it re-raises the
        missing-TensorFlow error for those names, `AttributeError` for
        any other.
    """

    def __getattr__(name):
        if name in names:
            importlib.import_module(names[name])
        raise AttributeError(f"module '{package}' has no attribute {name!r}")

    return __getattr__
