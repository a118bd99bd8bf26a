"""What Keras 3 needs to train this package's raw-strings-in models under a
strategy (`string_input_safe`, `multi_worker_safe`), GPU memory growth,
and text datasets split across replicas."""

from __future__ import annotations

from typing import Any


def enable_memory_growth(config: Any = None) -> list[str]:
    """Lets TensorFlow take GPU memory as needed instead of all of it.

    Several workers may share a GPU, and every trial builds a model of a
    different size; grabbing the whole memory up front would starve the
    others. Must run before TensorFlow first touches a GPU; later calls
    leave the setting as it was.

    Args:
        config: the `tf.config` module, or a stand-in for tests.

    Returns:
        The names of the GPUs set to grow (empty without a GPU, or when
        TensorFlow was already initialized).
    """
    if config is None:
        import tensorflow as tf

        config = tf.config
    grown = []
    for gpu in config.list_physical_devices("GPU"):
        try:
            config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Already initialized: the devices keep their current setting.
            return []
        grown.append(gpu.name)
    return grown


def distribute_text_dataset(strategy: Any, dataset: Any) -> Any:
    """Splits a dataset of raw-text batches across the strategy's replicas.

    Keras would distribute it itself, but prefetching to the devices: string
    tensors cannot live in GPU memory. The model's first layer turns the
    strings into ids on the host anyway, so batches are kept there.

    Across workers, each one runs the whole pipeline and keeps its part of
    every batch (`AutoShardPolicy.DATA`): the texts are in memory, so there
    are no files to shard by. For the parts to make up each batch exactly
    once, every worker must shuffle alike, i.e. with the same seed.

    Args:
        strategy: a `tf.distribute` strategy, or None.
        dataset: a `tf.data.Dataset` of `(text, label)` batches.

    Returns:
        The dataset itself without a strategy, else a `DistributedDataset`
        (Keras accepts both in `fit`, `evaluate` and `validation_data`).
    """
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    inputs = tf.distribute.InputOptions(experimental_fetch_to_device=False)
    return strategy.experimental_distribute_dataset(
        dataset.with_options(options), inputs
    )


def string_input_safe(model: Any) -> Any:
    """Lets a raw-strings-in model train under a `tf.distribute` strategy.

    Under a strategy, Keras 3's TensorFlow trainer builds the model's
    metrics and optimizer from a first batch it averages across replicas
    (`_maybe_symbolic_build` reduces it with "MEAN"), which fails on string
    inputs ("AddN ... string is not in the list of allowed values"; keras
    issue #21172). Only the shapes and dtypes of that batch matter, so this
    model uses the first replica's part instead. Models outside a strategy
    are returned unchanged.

    Args:
        model: a Keras model built in (or out of) a strategy scope.

    Returns:
        The same model.
    """
    import tensorflow as tf

    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None or not hasattr(model, "_symbolic_build"):
        return model

    def maybe_symbolic_build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0],
                    next(batches),
                )
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    # Set on the instance, past Keras's attribute tracking: a plain function,
    # not state, and not saved with the model.
    object.__setattr__(model, "_maybe_symbolic_build", maybe_symbolic_build)
    return model


def multi_worker_safe() -> None:
    """Lets Keras 3 `fit` and `evaluate` run across several workers.

    Keras 3's TensorFlow trainer averages each step's logged values across
    workers with `strategy.reduce("MEAN", value, axis=0)`, which fails on
    the scalar losses and metrics ("Invalid reduction dimension 0 for input
    with 0 dimensions"; tensorflow/tensorflow#72388). For multi-worker
    strategies this takes the mean over the process's own replicas instead;
    everything else goes to Keras's function unchanged.

    What changes: the per-step values (the progress bar, `on_train_batch_end`)
    are this worker's running means. What does not: at each epoch's end
    Keras reads the metric variables across all replicas, so the epoch logs
    (History, CSVLogger, EarlyStopping, `validation_data`, `evaluate`) are
    over all workers' data and the same on every worker. Idempotent;
    affects only multi-worker strategies.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_recurrent_zoo_patched", False):
        return

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction not in ("auto", "mean") or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy
        ):
            return original(values, strategy, reduction)

        def local_mean(value: Any) -> Any:
            if isinstance(value, tf.distribute.DistributedValues):
                parts = strategy.experimental_local_results(value)
                return tf.reduce_mean(tf.stack(parts), axis=0)
            return value

        return tree.map_structure(local_mean, values)

    reduce_per_replica._recurrent_zoo_patched = True
    # Looked up as a module global when Keras traces its step functions.
    trainer.reduce_per_replica = reduce_per_replica
