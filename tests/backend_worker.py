"""Runs saved models on one Keras backend, for `test_backends.py`.

    KERAS_BACKEND=jax python tests/backend_worker.py SPEC.json

SPEC lists cases, each a `.keras` file saved on TensorFlow and an `.npz`
of its inputs and output cotangents. For each case this writes, into the
spec's folder, `<name>.<backend>.npz` (the outputs, and the gradients of
sum(outputs * cotangents) with respect to the float inputs and the
trainable weights, by this backend's own autodiff) and
`<name>.<backend>.keras`: the model saved again on this backend, after a
few SGD steps for single-output models (their loss before and after, and
the saved model's outputs, go into the `.npz` too).
"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

import recurrent_zoo.layers  # noqa: F401  (registers the layers for loading)


def _as_model_input(values):
    return values[0] if len(values) == 1 else values


def _loss(outputs, cotangents):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return sum(
        keras.ops.sum(o * keras.ops.convert_to_tensor(c))
        for o, c in zip(outputs, cotangents, strict=True)
    )


def _flat(outputs):
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(o) for o in outputs]


def gradients_tensorflow(model, inputs, cotangents, floats):
    import tensorflow as tf

    tensors = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        for i in floats:
            tape.watch(tensors[i])
        outputs = model(_as_model_input(tensors), training=False)
        loss = _loss(outputs, cotangents)
    wrt = [tensors[i] for i in floats] + [v.value for v in model.trainable_weights]
    return outputs, tape.gradient(loss, wrt)


def gradients_jax(model, inputs, cotangents, floats):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def loss_of(trainable, float_inputs):
        values = list(inputs)
        for i, value in zip(floats, float_inputs, strict=True):
            values[i] = value
        outputs, _ = model.stateless_call(
            trainable, fixed, _as_model_input(values), training=False
        )
        return _loss(outputs, cotangents), outputs

    grad = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)
    (_, outputs), (of_weights, of_inputs) = grad(trainable, [inputs[i] for i in floats])
    return outputs, list(of_inputs) + list(of_weights)


def gradients_torch(model, inputs, cotangents, floats):
    import torch

    tensors = [torch.tensor(x, requires_grad=i in floats) for i, x in enumerate(inputs)]
    for v in model.trainable_weights:
        v.value.grad = None
    outputs = model(_as_model_input(tensors), training=False)
    if not floats and not model.trainable_weights:
        return outputs, []  # nothing to differentiate (torch would refuse)
    _loss(outputs, cotangents).backward()
    wrt = [tensors[i].grad for i in floats]
    wrt += [v.value.grad for v in model.trainable_weights]
    return outputs, wrt


def run_case(case, folder, backend):
    model = keras.saving.load_model(folder / f"{case['name']}.keras")
    data = np.load(folder / f"{case['name']}.npz")
    inputs = [data[f"input_{i}"] for i in range(case["inputs"])]
    cotangents = [data[f"cotangent_{i}"] for i in range(case["outputs"])]
    gradients = globals()[f"gradients_{backend}"]
    outputs, grads = gradients(model, inputs, cotangents, case["floats"])
    result = {f"output_{i}": o for i, o in enumerate(_flat(outputs))}
    for i, g in enumerate(grads):
        # An unconnected weight (none here, by design) would show as NaN.
        value = np.nan if g is None else keras.ops.convert_to_numpy(g)
        result[f"gradient_{i}"] = np.asarray(value)
    if case["outputs"] == 1 and case["floats"]:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        target = np.zeros_like(result["output_0"])
        x = _as_model_input(inputs)
        before = model.evaluate(x, target, verbose=0)
        model.fit(x, target, epochs=3, batch_size=len(inputs[0]), verbose=0)
        result["losses"] = np.array([before, model.evaluate(x, target, verbose=0)])
    # The model as saved (trained, where it was), and what it computes here.
    trained = _flat(model(_as_model_input(inputs), training=False))
    result.update({f"saved_output_{i}": o for i, o in enumerate(trained)})
    model.save(folder / f"{case['name']}.{backend}.keras")
    np.savez(folder / f"{case['name']}.{backend}.npz", **result)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    folder = Path(spec["folder"])
    for case in spec["cases"]:
        run_case(case, folder, keras.backend.backend())
    print("done", keras.backend.backend(), len(spec["cases"]))


if __name__ == "__main__":
    main(sys.argv[1])
