"""The one decorator that makes a class public and loadable from `.keras`."""

import keras

PACKAGE = "tfkd"


def tfkd_export(path):
    """Marks `path` as the public name of a class and registers it.

    Classes with a `get_config` (layers, losses, models) are registered with
    `keras.saving.register_keras_serializable` under the package `"tfkd"`, so
    such a class cannot become public without also being loadable by
    `keras.models.load_model(..., safe_mode=True)`. Callbacks, which Keras
    never saves, are only named.

    Args:
        path: str. The public dotted name, e.g. `"tfkd.Distiller"`.

    Returns:
        A class decorator.

    Example:

    ```python
    @tfkd_export("tfkd.losses.BinaryKLDivergence")
    class BinaryKLDivergence(keras.losses.Loss):
        ...
    ```
    """
    if not isinstance(path, str) or not path.startswith(PACKAGE + "."):
        raise ValueError(
            f"`path` must be a dotted name under '{PACKAGE}.'. "
            f"Received: path={path!r}"
        )

    def decorator(cls):
        if hasattr(cls, "get_config"):
            register = keras.saving.register_keras_serializable(PACKAGE)
            cls = register(cls)
        cls._tfkd_api_name = path
        return cls

    return decorator
