"""Shared measuring kit of the layer benchmarks (`layer_speed.py`, `layer_scaling.py`).

What every layer measurement here has in common:

- The candidates: each recurrent_zoo layer and the Keras built-in it is
  compared with, grouped in pairs (`CANDIDATES`).
- A compiled training step (`tf.function` around forward, loss, gradients and
  an SGD update: what `model.fit` runs per batch, without its callbacks) and
  Keras's own predict step (what `model.predict` and `predict_on_batch` run
  per batch, without their data handling). `jit_compile` defaults to what Keras's own
  `jit_compile="auto"` picks on the machine: off where there is no GPU, on
  with one.
- Which path a layer took, read from the traced graph rather than assumed:
  `cuDNN` when the step holds a `CudnnRNN*` op (Keras's LSTM/GRU on a GPU),
  `XLA` when compiled with it, otherwise TensorFlow's `while_loop`.
- Timing: compile/first call timed on its own, warm-up excluded, repetitions
  of all candidates of a pair interleaved so machine noise hits them alike,
  medians reported, ratios taken between candidates of the same process.
- Peak training memory: the peak of TensorFlow's allocator over one
  training step, above what was allocated before it (weights, inputs), i.e.
  the activations and temporaries back-propagation keeps. Measured in a fresh
  child process per candidate; on a CPU that child runs TensorFlow's BFC
  allocator (`TF_CPU_ALLOCATOR_USE_BFC`), the one GPUs use, because the
  default CPU allocator keeps no statistics.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from recurrent_zoo import layers as rz  # noqa: E402
from recurrent_zoo.catalog import DTYPE_POLICIES  # noqa: E402
from recurrent_zoo.environment import (  # noqa: E402
    cores_text,
    cpu_steal_fraction,
    machine_info,
    read_cpu_times,
)

# Every benchmark point builds fresh models, so retracing is expected.
tf.get_logger().setLevel("ERROR")

RESULTS = Path(__file__).resolve().parent / "results"
QUERIES = 16  # decoder steps attending over the sequence in attention pairs


@dataclasses.dataclass(frozen=True)
class Candidate:
    pair: str
    label: str
    make: Callable[[int], keras.layers.Layer]
    attention: bool = False

    @property
    def builtin(self) -> bool:
        return self.label.startswith("keras.")


CANDIDATES = [
    Candidate("SimpleRNN", "recurrent_zoo.SimpleRNN", lambda u: rz.SimpleRNN(u)),
    Candidate(
        "SimpleRNN",
        "recurrent_zoo.SimpleRNN(use_xla=True)",
        lambda u: rz.SimpleRNN(u, use_xla=True),
    ),
    Candidate("SimpleRNN", "keras.SimpleRNN", lambda u: keras.layers.SimpleRNN(u)),
    Candidate("LSTM", "recurrent_zoo.LayerNormLSTM", lambda u: rz.LayerNormLSTM(u)),
    Candidate(
        "LSTM",
        "recurrent_zoo.LayerNormLSTM(layer_norm=False)",
        lambda u: rz.LayerNormLSTM(u, layer_norm=False),
    ),
    Candidate(
        "LSTM",
        "recurrent_zoo.LayerNormLSTM(use_xla=False)",
        lambda u: rz.LayerNormLSTM(u, use_xla=False),
    ),
    Candidate("LSTM", "keras.LSTM", lambda u: keras.layers.LSTM(u)),
    Candidate("GRU", "recurrent_zoo.LayerNormGRU", lambda u: rz.LayerNormGRU(u)),
    Candidate(
        "GRU",
        "recurrent_zoo.LayerNormGRU(layer_norm=False)",
        lambda u: rz.LayerNormGRU(u, layer_norm=False),
    ),
    Candidate(
        "GRU",
        "recurrent_zoo.LayerNormGRU(use_xla=False)",
        lambda u: rz.LayerNormGRU(u, use_xla=False),
    ),
    Candidate("GRU", "keras.GRU", lambda u: keras.layers.GRU(u)),
    Candidate("MinGRU", "recurrent_zoo.MinGRU", lambda u: rz.MinGRU(u)),
    Candidate(
        "MinGRU",
        "recurrent_zoo.MinGRU(use_xla=False)",
        lambda u: rz.MinGRU(u, use_xla=False),
    ),
    Candidate("MinGRU", "keras.LSTM", lambda u: keras.layers.LSTM(u)),
    Candidate("MinLSTM", "recurrent_zoo.MinLSTM", lambda u: rz.MinLSTM(u)),
    Candidate(
        "MinLSTM",
        "recurrent_zoo.MinLSTM(use_xla=False)",
        lambda u: rz.MinLSTM(u, use_xla=False),
    ),
    Candidate("MinLSTM", "keras.LSTM", lambda u: keras.layers.LSTM(u)),
    Candidate(
        "Bidirectional",
        "recurrent_zoo.Bidirectional(LayerNormLSTM)",
        lambda u: rz.Bidirectional(rz.LayerNormLSTM(u)),
    ),
    Candidate(
        "Bidirectional",
        "recurrent_zoo.Bidirectional(LayerNormLSTM(use_xla=False))",
        lambda u: rz.Bidirectional(rz.LayerNormLSTM(u, use_xla=False)),
    ),
    Candidate(
        "Bidirectional",
        "keras.Bidirectional(LSTM)",
        lambda u: keras.layers.Bidirectional(keras.layers.LSTM(u)),
    ),
    Candidate(
        "Attention",
        "recurrent_zoo.BahdanauAttention",
        lambda u: rz.BahdanauAttention(u),
        attention=True,
    ),
    Candidate(
        "Attention",
        "keras.AdditiveAttention",
        lambda u: keras.layers.AdditiveAttention(),
        attention=True,
    ),
]


def candidates(pairs: Sequence[str] | None = None) -> list[Candidate]:
    """The candidates of the named pairs (all pairs when None)."""
    known = {c.pair for c in CANDIDATES}
    unknown = sorted(set(pairs or ()) - known)
    if unknown:
        raise ValueError(f"unknown pairs {unknown}; known: {sorted(known)}")
    return [c for c in CANDIDATES if pairs is None or c.pair in pairs]


def find(label: str) -> Candidate:
    for candidate in CANDIDATES:
        if candidate.label == label:
            return candidate
    raise ValueError(f"unknown candidate {label!r}")


def default_jit_compile() -> bool:
    """What `jit_compile="auto"` resolves to for these models (Keras 3 on TF):
    off on a CPU-only machine, on when an accelerator is visible."""
    return any(d.device_type != "CPU" for d in tf.config.list_physical_devices())


def add_run_arguments(parser) -> None:
    """The options both layer benchmarks share."""
    parser.add_argument(
        "--jit-compile",
        choices=("auto", "true", "false"),
        default="auto",
        help="XLA for every candidate (auto: what Keras picks here)",
    )
    parser.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        default="float32",
        help="Keras's global policy for every candidate, the built-ins too",
    )
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--results", type=Path, help="default benchmarks/results")
    parser.add_argument(
        "--quick", action="store_true", help="tiny smoke run; files only with --results"
    )


def resolve_run_arguments(args) -> None:
    """`--jit-compile` to a bool; `--results` to the folder to write (None:
    write nothing, the default of a quick run)."""
    keras.mixed_precision.set_dtype_policy(args.dtype_policy)
    args.jit_compile_auto = args.jit_compile == "auto"
    args.jit_compile = (
        default_jit_compile() if args.jit_compile_auto else args.jit_compile == "true"
    )
    if args.results is None and not args.quick:
        args.results = RESULTS


def build_model(
    candidate: Candidate, units: int, steps: int, features: int
) -> keras.Model:
    """The layer alone between inputs and a many-to-one output.

    Recurrent layers read (steps, features) sequences; attention layers let
    `QUERIES` queries attend over `steps` keys of width `units` (Keras's
    AdditiveAttention needs query and value of one width and has no
    projections, so this pair compares the attention computation itself).
    """
    layer = candidate.make(units)
    if candidate.attention:
        query = keras.Input((QUERIES, units))
        value = keras.Input((steps, units))
        output = layer([query, value])
        return keras.Model([query, value], output)
    inputs = keras.Input((steps, features))
    return keras.Model(inputs, layer(inputs))


def make_batch(model: keras.Model, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = [
        tf.constant(rng.normal(size=(batch, *i.shape[1:])).astype("float32"))
        for i in model.inputs
    ]
    target = tf.constant(
        rng.normal(size=(batch, *model.outputs[0].shape[1:])).astype("float32")
    )
    return (inputs if len(inputs) > 1 else inputs[0]), target


def supports_jit(model: keras.Model) -> bool:
    """False when a layer can't be compiled by XLA: Keras's LSTM/GRU set
    `supports_jit = False` where they may take cuDNN, whose ops XLA lacks.
    Such a model runs without XLA, as Keras's own `jit_compile="auto"`
    runs it."""
    layers = list(model.layers)
    for layer in model.layers:  # a Bidirectional's two directions
        layers += [getattr(layer, k, None) for k in ("forward_layer", "backward_layer")]
    return all(getattr(layer, "supports_jit", True) for layer in layers if layer)


def train_step(model: keras.Model, jit_compile: bool):
    """A compiled SGD step on mean squared error; returns the loss."""
    optimizer = keras.optimizers.SGD(1e-3)
    optimizer.build(model.trainable_variables)
    jit_compile = jit_compile and supports_jit(model)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            # float32 whatever the policy: a mixed model's output is not.
            output = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.square(output - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def infer_step(model: keras.Model, jit_compile: bool):
    """`infer(x)`: the model's predict step, as Keras builds it for
    `model.predict` under `compile(jit_compile=...)`. Keras's own step,
    not a tf.function of ours: inside it the package's layers run their
    inference loop compiled by XLA (`tf_kernel_parts.inference_compiler`),
    as a user's `predict` does."""
    model.compile(jit_compile=jit_compile and supports_jit(model))
    model.make_predict_function(force=True)
    predict = model.predict_function
    return lambda x: predict([(x,)])


# Not an op: `graph_ops` gives it in place of the ops of a function that
# XLA compiles on its own (a min-RNN's training step, a kernel's loop).
XLA_FUNCTION = "<XLA-compiled function>"


def graph_ops(function, *args) -> set[str]:
    """Op types that TensorFlow's executor runs for a tf.function: its
    graph's and those of the function bodies it calls (while-loop bodies,
    gradients), except that a function compiled by XLA counts as
    `XLA_FUNCTION`, whatever it holds (its while loop is XLA's, not a
    TensorFlow `While`)."""
    graph_def = function.get_concrete_function(*args).graph.as_graph_def()
    library = {f.signature.name: f for f in graph_def.library.function}
    ops: set[str] = set()
    seen: set[str] = set()
    pending = list(graph_def.node)
    while pending:
        node = pending.pop()
        ops.add(node.op)
        called = [node.op] + [
            value.func.name for value in node.attr.values() if value.func.name
        ]
        for name in called:
            if name not in library or name in seen:
                continue
            seen.add(name)
            if library[name].attr["_XlaMustCompile"].b:
                ops.add(XLA_FUNCTION)
            else:
                pending.extend(library[name].node_def)
    return ops


def execution_path(ops: set[str], jit_compile: bool) -> str:
    if any(op.startswith("CudnnRNN") for op in ops):
        return "cuDNN"
    if jit_compile:
        return "XLA"
    path = "while_loop" if "While" in ops or "StatelessWhile" in ops else "graph"
    return f"{path} + XLA function" if XLA_FUNCTION in ops else path


def run(function, *args) -> float:
    """Seconds for one call, including fetching the result to the host."""
    start = time.perf_counter()
    result = function(*args)
    tf.nest.map_structure(lambda t: t.numpy(), result)
    return time.perf_counter() - start


def interleaved(
    functions: dict[str, tuple], repeats: int, calls: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each (function, *args), `repeats` rounds in turn."""
    times: dict[str, list[float]] = {key: [] for key in functions}
    for _ in range(repeats):
        for key, (function, *args) in functions.items():
            total = sum(run(function, *args) for _ in range(calls))
            times[key].append(total / calls)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# Peak memory -----------------------------------------------------------------


def training_peak_mb(step, x, y) -> float:
    """Peak extra allocator memory over one training step, in MiB."""
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)["current"]
    run(step, x, y)
    peak = tf.config.experimental.get_memory_info(device)["peak"]
    return (peak - before) / 2**20


def measure_memory(
    label: str,
    shapes: Sequence[dict],
    jit_compile: bool,
    timeout: float = 1800,
) -> list[float | None]:
    """Peak training memory (MiB) of one candidate at each shape, measured in
    a fresh child process (None where the child failed, e.g. out of memory)."""
    env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
    policy = keras.mixed_precision.dtype_policy().name  # the parent's, passed on
    request = json.dumps(
        {"label": label, "shapes": list(shapes), "jit": jit_compile, "policy": policy}
    )
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", request],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("MEMORY "):
            return json.loads(line[len("MEMORY ") :])
    sys.stderr.write(done.stderr[-2000:])
    return [None] * len(shapes)


def _memory_child(request: str) -> None:
    spec = json.loads(request)
    keras.mixed_precision.set_dtype_policy(spec.get("policy", "float32"))
    candidate = find(spec["label"])
    peaks: list[float | None] = []
    for shape in spec["shapes"]:
        keras.backend.clear_session()
        model = build_model(
            candidate, shape["units"], shape["steps"], shape["features"]
        )
        x, y = make_batch(model, shape["batch"])
        step = train_step(model, spec["jit"])
        run(step, x, y)  # trace and compile outside the measurement
        peaks.append(training_peak_mb(step, x, y))
        del model, step, x, y
    print("MEMORY " + json.dumps(peaks), flush=True)


# Records ---------------------------------------------------------------------


class RunRecord:
    """Command, date, machine and CPU time stolen over a benchmark run."""

    def __init__(self) -> None:
        self.command = "python " + " ".join(
            [os.path.relpath(sys.argv[0], Path.cwd()), *sys.argv[1:]]
        )
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self._cpu = read_cpu_times()

    def finish(self) -> dict:
        info = machine_info()
        info["cpu_steal_fraction_during_run"] = cpu_steal_fraction(
            self._cpu, read_cpu_times()
        )
        info["load_average"] = list(os.getloadavg())
        return {
            "command": self.command,
            "date": self.started.isoformat(timespec="seconds"),
            "minutes": round(
                (
                    datetime.datetime.now(datetime.timezone.utc) - self.started
                ).total_seconds()
                / 60,
                1,
            ),  # fmt: skip
            "machine": info,
        }


def header_lines(title: str, record: dict, notes: Sequence[str] = ()) -> list[str]:
    info = record["machine"]
    gpus = ", ".join(info["gpus"]) or "none"
    return [
        f"# {title}",
        "",
        f"Command: `{record['command']}`  ",
        f"Date: {record['date']} ({record['minutes']} min)  ",
        f"Machine: {info['cpu']} ({cores_text(info)}), GPUs: {gpus}; "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}  ",
        f"CPU time stolen by other guests: "
        f"{100 * info['cpu_steal_fraction_during_run']:.1f}%; load average at "
        f"the end: {', '.join(f'{v:.1f}' for v in info['load_average'])}",
        "",
        *notes,
    ]


def save_figure(figure, path: Path) -> None:
    """PNG through matplotlib's Agg canvas: no pyplot state, no display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=110)


def write_results(
    name: str, payload: dict, markdown: Sequence[str], results: Path = RESULTS
) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (results / f"{name}.md").write_text("\n".join(markdown) + "\n")


if __name__ == "__main__" and sys.argv[1:2] == ["--memory-child"]:
    _memory_child(sys.argv[2])
