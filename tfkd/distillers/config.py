"""The Distiller's settings and what saving writes and loading restores.

`alpha` and `temperature` are float32 variables (a callback changes them
between epochs without retracing) with Python mirrors that keep configs
free of float32 rounding. `get_config` holds both models, the kind and the
`tfkd.FeatureDistillation` hint (its projection's weights are saved with
the Distiller's); `get_compile_config` the optimizer, the losses as the
user passed them, `alpha` and `temperature`.
"""

import keras
import numpy as np
from keras import ops

from tfkd.distillers import feature_distillation
from tfkd.distillers import loss_terms as distiller_losses
from tfkd.distillers import validation as validation


class DistillerConfig:
    """Mixin of `tfkd.Distiller`: settings, config and compile config."""

    @property
    def alpha(self):
        """Weight of the hard-label loss, in [0, 1]."""
        return self._alpha_value

    @alpha.setter
    def alpha(self, value):
        self._alpha_value = validation.validate_alpha(value)
        self._alpha.assign(self._alpha_value)

    @property
    def temperature(self):
        """Temperature of the soft targets, >= `MIN_TEMPERATURE`."""
        return self._temperature_value

    @temperature.setter
    def temperature(self, value):
        self._temperature_value = validation.validate_temperature(value)
        self._temperature.assign(self._temperature_value)

    def load_own_variables(self, store):
        # `load_weights` (so `BackupAndRestore`) restores the variables;
        # the Python values follow, kept exact where they round to the
        # same float32.
        super().load_own_variables(store)
        for name in ("alpha", "temperature"):
            restored = float(ops.convert_to_numpy(getattr(self, f"_{name}")))
            mirror = getattr(self, f"_{name}_value")
            if np.float32(mirror) != np.float32(restored):
                setattr(self, f"_{name}_value", restored)

    def save(self, filepath, *args, **kwargs):
        # Keras opens the file before it serializes the compile settings:
        # serialize first, so a loss that cannot be saved writes nothing.
        self.get_compile_config()
        return super().save(filepath, *args, **kwargs)

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "teacher": serialize(self.teacher),
            "student": serialize(self.student),
            "kind": self.kind,
            "feature_distillation": serialize(self.feature_distillation),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("teacher", "student"):
            config[role] = keras.saving.deserialize_keras_object(config[role])
        hint = config.get("feature_distillation")
        if hint is not None:
            config["feature_distillation"] = (
                keras.saving.deserialize_keras_object(hint)
            )
        return cls(**config)

    def get_compile_config(self):
        if self._compile_args is None:
            return {}
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            **self._compile_args.serialize(),
            "alpha": self.alpha,
            "temperature": self.temperature,
        }

    def compile_from_config(self, config):
        config = distiller_losses.deserialize_compile_args(config)
        kwargs = config.pop("kwargs", None) or {}
        self.compile(**config, **kwargs)
        if self.built:
            self.optimizer.build(
                feature_distillation.trained_variables(self)
            )
