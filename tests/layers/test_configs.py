"""`get_config` covers every constructor argument, with non-default values."""

import inspect

import keras
import pytest

from recurrent_zoo import layers as rz

# Every argument set away from its default, so a key missing from get_config
# (silently rebuilt with the default) shows up as a difference.
RECURRENT = dict(
    use_bias=False, kernel_initializer="ones", recurrent_initializer="zeros",
    bias_initializer="ones", kernel_regularizer="l2", recurrent_regularizer="l1",
    bias_regularizer="l2", kernel_constraint="non_neg",
    recurrent_constraint="unit_norm", bias_constraint="non_neg", dropout=0.1,
    recurrent_dropout=0.2, norm_epsilon=1e-4, gamma_initializer="zeros",
    beta_initializer="ones", seed=7,
)  # fmt: skip
# A GRU has no shift, so no beta_initializer.
GRU_RECURRENT = {k: v for k, v in RECURRENT.items() if k != "beta_initializer"}
GRU = dict(
    units=3, activation="relu", recurrent_activation="tanh", reset_after=False,
    layer_norm=False, **GRU_RECURRENT,
)  # fmt: skip
SEQUENCE = dict(
    return_sequences=True, return_state=True, go_backwards=True, stateful=True,
    unroll=True, zero_output_for_mask=True, activity_regularizer="l2",
    use_xla=False,
)  # fmt: skip
ATTENTION = dict(
    units=3, use_bias=False, kernel_initializer="ones", bias_initializer="ones",
    kernel_regularizer="l2", bias_regularizer="l1", kernel_constraint="non_neg",
    bias_constraint="non_neg", dropout=0.3, seed=5,
)  # fmt: skip
MIN_RNN = dict(
    units=3, candidate_activation="tanh", use_bias=False, kernel_initializer="ones",
    bias_initializer="ones", kernel_regularizer="l2", bias_regularizer="l1",
    kernel_constraint="non_neg", bias_constraint="non_neg",
)  # fmt: skip
# Without unroll, which the parallel-scan layers do not take.
MIN_SEQUENCE = {k: v for k, v in SEQUENCE.items() if k != "unroll"}
CASES = [
    (rz.SimpleRNNCell, dict(units=3, activation="relu", layer_norm=True, **RECURRENT)),
    (
        rz.SimpleRNN,
        # use_xla: "inference" by default here, unlike the other layers.
        dict(
            units=3,
            activation="relu",
            layer_norm=True,
            **RECURRENT,
            **{**SEQUENCE, "use_xla": True},
        ),
    ),  # fmt: skip
    (
        rz.LayerNormLSTMCell,
        dict(
            units=3,
            activation="relu",
            recurrent_activation="tanh",
            unit_forget_bias=False,
            layer_norm=False,
            **RECURRENT,
        ),
    ),  # fmt: skip
    (
        rz.LayerNormLSTM,
        dict(
            units=3,
            activation="relu",
            recurrent_activation="tanh",
            unit_forget_bias=False,
            layer_norm=False,
            **RECURRENT,
            **SEQUENCE,
        ),
    ),  # fmt: skip
    (rz.LayerNormGRUCell, GRU),
    (rz.LayerNormGRU, dict(**GRU, **SEQUENCE)),
    (rz.MinGRUCell, MIN_RNN),
    (rz.MinGRU, dict(**MIN_RNN, dropout=0.2, seed=3, **MIN_SEQUENCE)),
    (rz.MinLSTMCell, MIN_RNN),
    (rz.MinLSTM, dict(**MIN_RNN, dropout=0.2, seed=3, **MIN_SEQUENCE)),
    (
        rz.BahdanauAttention,
        ATTENTION,
    ),  # fmt: skip
    (
        rz.AttentionPooling,
        ATTENTION,
    ),  # fmt: skip
    (rz.NaiveBayesNgrams, dict(buckets=64, classes=3, alpha=0.5)),
    (
        rz.Bidirectional,
        dict(
            layer=keras.layers.GRU(3, return_sequences=True),
            merge_mode="mul",
            backward_layer=keras.layers.GRU(3, return_sequences=True, dropout=0.5),
        ),
    ),  # fmt: skip
]


def _arguments(cls):
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in params if p.name != "self" and p.kind in named}


@pytest.mark.parametrize("cls, kwargs", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_config_covers_every_argument(cls, kwargs):
    layer = cls(**kwargs)
    config = layer.get_config()
    missing = _arguments(cls) - set(config)
    assert not missing, f"{cls.__name__}.get_config() lacks {sorted(missing)}"
    rebuilt = cls.from_config(config)
    assert rebuilt.get_config() == config
    for name in kwargs:
        if name in ("layer", "backward_layer"):
            continue
        value = getattr(rebuilt, name, None)
        if isinstance(kwargs[name], (bool, int, float)) and value is not None:
            assert value == kwargs[name], name
