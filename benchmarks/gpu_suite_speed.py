"""The layer_speed part of `gpu_suite.py`: the configs it measures, the
measurement of a pair at one config (cuDNN's built-ins without XLA), and
its `layer_speed_<config>.{json,md,png}` files."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from gpu_suite_parts import PartWriter, _error_line

LAYER_PAIRS = ("LSTM", "GRU", "SimpleRNN", "Bidirectional")
# layer_speed.py's default shape, and a long, wide one where cuDNN should pull away.
SHAPES = {
    "base": dict(batch=64, steps=200, features=64, units=128),
    "long": dict(batch=128, steps=500, features=64, units=256),
}
# A smoke run on a CPU: one tiny shape still takes every kind of config (XLA
# off and on, mixed precision), and each config costs a build of every
# candidate: most of a quick run's time.
QUICK_SHAPES = {"base": dict(batch=4, steps=6, features=3, units=5)}
# One build and few repetitions: the budget goes to covering every shape.
TIMING = dict(builds=1, repeats=5, calls=1, warmup=1)
QUICK_TIMING = dict(builds=1, repeats=1, calls=1, warmup=0)


# What a GPU user trains under (float16 on tensor cores, cuDNN's built-ins
# in float16 too): measured at the base shape only, after the float32 configs.
MIXED_POLICY = "mixed_float16"


def layer_speed_configs(quick: bool) -> list[dict[str, Any]]:
    """Each shape with XLA off and on, tagged e.g. `base_jit-off`, in float32;
    then the base shape under `MIXED_POLICY` without XLA."""
    shapes = QUICK_SHAPES if quick else SHAPES
    configs = [
        {
            "tag": f"{name}_jit-{'on' if jit else 'off'}",
            "jit_compile": jit,
            "dtype_policy": "float32",
            **shape,
        }
        for name, shape in shapes.items()
        for jit in (False, True)
    ]
    mixed = {"jit_compile": False, "dtype_policy": MIXED_POLICY, **shapes["base"]}
    return configs + [{"tag": "base_mixed-float16", **mixed}]


def _layer_speed_args(config: dict[str, Any], quick: bool) -> argparse.Namespace:
    timing = QUICK_TIMING if quick else TIMING
    keys = ("batch", "steps", "features", "units", "jit_compile", "dtype_policy")
    return argparse.Namespace(**{k: config[k] for k in keys}, **timing, memory=False)


_RATIOS = ("throughput_ratio", "latency_batch1_speedup", "latency_batch256_speedup")


def uses_cudnn(candidate: Any) -> bool:
    """Whether a candidate is a Keras built-in that takes cuDNN on a GPU."""
    layer = candidate.make(4)
    inner = getattr(layer, "forward_layer", layer)  # Bidirectional's LSTM
    return candidate.builtin and getattr(inner, "use_cudnn", False) in ("auto", True)


def pair_members(pair: str, quick: bool) -> list:
    """A pair's candidates; a quick run leaves out the variants with an
    argument (`layer_norm=False`, `use_xla=False`), which take the paths of
    the layers they vary."""
    import harness

    return [c for c in harness.CANDIDATES
            if c.pair == pair and not (quick and "=" in c.label)]  # fmt: skip


def measure_unit(
    members: list, args: argparse.Namespace, gpu: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`measure_pair` rows of a pair at one config, and errors.

    XLA has no kernel for cuDNN's ops, so with `jit_compile` on a GPU,
    Keras's LSTM/GRU fail to compile; they are measured without XLA (what
    Keras's own `jit_compile="auto"` does with them), in a group of their
    own, and flagged.
    """
    blocked = [c for c in members if gpu and args.jit_compile and uses_cudnn(c)]
    no_xla = argparse.Namespace(**{**vars(args), "jit_compile": False})
    groups = [([c for c in members if c not in blocked], args), (blocked, no_xla)]
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for group, group_args in groups:
        if group:
            got, failed = _measure_group(group, group_args)
            rows += got
            errors += failed
    for row in rows:
        if any(row["layer"] == c.label for c in blocked):
            row["note"] = "XLA can't compile cuDNN ops: measured without XLA"
    order = [c.label for c in members]
    return sorted(rows, key=lambda row: order.index(row["layer"])), errors


def _measure_group(group: list, args: argparse.Namespace):
    """The group's candidates interleaved; if that fails, one by one, so one
    candidate's failure (out of memory, say) costs only its own row."""
    import keras
    import layer_speed

    try:
        return layer_speed.measure_pair(group, args), []
    except Exception as error:
        keras.backend.clear_session()
        if len(group) == 1:
            return [], [{"layer": group[0].label, "error": _error_line(error)}]
    rows, errors = [], []
    for candidate in group:
        got, failed = _measure_group([candidate], args)
        rows += got
        errors += failed
    return rows, errors


def part_layer_speed(writer: PartWriter) -> None:
    """Pair by pair (LSTM first: the cuDNN comparison matters most), every
    config of a pair, so that a budget that runs out costs the least
    interesting measurements."""
    import harness
    import layer_speed
    import tensorflow as tf

    from recurrent_zoo.training import precision

    gpu = bool(tf.config.list_physical_devices("GPU"))
    # TF32 (on by default on Ampere and later) speeds every candidate's
    # matrix products alike; recorded so runs on other cards compare.
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    writer.set(gpu=gpu, tensor_float_32=tf32)
    record = harness.RunRecord()
    record.command = writer.spec["command"]
    per_candidate_s: dict[str, float] = {}
    for pair in LAYER_PAIRS:
        members = pair_members(pair, writer.spec["quick"])
        for config in layer_speed_configs(writer.spec["quick"]):
            tag = config["tag"]
            # The last unit at this config predicts this one's cost.
            estimate = per_candidate_s.get(tag, 0.0) * len(members)
            if writer.time_left() < estimate or writer.time_left() < 0:
                reason = f"budget: {max(writer.time_left(), 0):.0f} s left"
                writer.add("skipped", {"pair": pair, "config": tag, "reason": reason})
                continue
            args = _layer_speed_args(config, writer.spec["quick"])
            started = time.monotonic()
            with precision.dtype_policy(args.dtype_policy):
                rows, errors = measure_unit(members, args, gpu)
            seconds = time.monotonic() - started
            per_candidate_s[tag] = seconds / len(members)
            for error in errors:
                writer.add("errors", {"pair": pair, "config": tag, **error})
            if any(row["builtin"] for row in rows):
                layer_speed.add_ratios(rows)
            else:  # every built-in failed: nothing to divide by
                for row in rows:
                    row.update(dict.fromkeys(_RATIOS, float("nan")), versus=None)
            for row in rows:
                row.update(config=tag, unit_seconds=round(seconds, 1))
                writer.data["rows"].append(row)
            writer.save()
            if rows:
                _write_layer_speed_files(writer, config, args, record)
    if writer.data["skipped"] or writer.data["errors"]:
        writer.set(status="partial")


def _write_layer_speed_files(
    writer: PartWriter, config: dict[str, Any], args: argparse.Namespace, record
) -> None:
    """`layer_speed_<tag>.{json,md,png}`, in layer_speed.py's own format."""
    import harness
    import layer_speed

    tag = config["tag"]
    rows = [r for r in writer.data["rows"] if r["config"] == tag]
    finished = record.finish()
    lines = layer_speed.markdown(rows, finished, args)
    # layer_speed.py writes one file set and runs with Keras's choice of XLA;
    # here the setting is forced and each config has its own files.
    lines = [
        line.replace(
            "(what Keras's `auto` picks on this machine)", "(set by gpu_suite.py)"
        ).replace("(layer_speed.png)", f"(layer_speed_{tag}.png)")
        for line in lines
    ]
    payload = {**finished, "arguments": vars(args), "results": rows}
    results = Path(writer.spec["results"])
    harness.write_results(f"layer_speed_{tag}", payload, lines, results)
    layer_speed.plot(rows, results / f"layer_speed_{tag}.png")
