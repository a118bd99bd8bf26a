"""Dynamic loss scaling for models with sparse (embedding) gradients."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="recurrent_zoo")
class SparseSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`keras.optimizers.LossScaleOptimizer` whose overflow check sees every
    value of a sparse (`tf.IndexedSlices`) gradient, such as an Embedding's.

    Keras's `check_finite` (Keras 3.15) misses a non-finite value in a row of
    an `IndexedSlices` gradient when that row's index occurs more than once
    (a word repeated in the batch): the step is then applied, not skipped,
    and the embedding turns NaN for good. Checking the slices' values
    directly sees every row.
    """

    def check_finite(self, grads):
        return super().check_finite(
            [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]
        )
