import keras
import numpy as np
import pytest
from layer_checks import check_config_round_trip

from recurrent_zoo.layers.hashed_bigrams import HashedBigramEmbedding, hash_bigrams


def test_hash_by_hand():
    ids = np.array([[5, 3, 8, 0], [2, 0, 0, 0]])
    expected = [
        [1 + (5 * 1_000_003 + 3) % 10, 1 + (3 * 1_000_003 + 8) % 10, 0, 0],
        [0, 0, 0, 0],
    ]
    assert hash_bigrams(ids, 10).numpy().tolist() == expected


def test_buckets_stay_in_range_for_large_vocabularies():
    ids = np.random.default_rng(0).integers(1, 2**31 - 1, size=(8, 50))
    buckets = hash_bigrams(ids, 97).numpy()
    assert buckets[:, :-1].min() >= 1 and buckets.max() <= 97
    assert (buckets[:, -1] == 0).all()


def test_embedding_looks_up_bucket_rows_and_keeps_word_mask():
    layer = HashedBigramEmbedding(10, 3)
    ids = np.array([[5, 3, 8, 0]])
    out = layer(ids).numpy()
    table = layer.embeddings.numpy()
    for t, bucket in enumerate(hash_bigrams(ids, 10).numpy()[0]):
        np.testing.assert_array_equal(out[0, t], table[bucket])
    np.testing.assert_array_equal(layer.compute_mask(ids), [[True, True, True, False]])


def test_sum_with_word_embedding_keeps_the_mask():
    ids = keras.Input((None,), dtype="int32")
    words = keras.layers.Embedding(20, 4, mask_zero=True)(ids)
    summed = keras.layers.Add()([words, HashedBigramEmbedding(10, 4)(ids)])
    assert summed._keras_mask is not None


@pytest.mark.parametrize(
    "kwargs", [{"num_buckets": 0}, {"output_dim": 2.5}, {"padding_id": "0"}]
)
def test_rejects_bad_arguments(kwargs):
    args = {"num_buckets": 10, "output_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=repr(next(iter(kwargs.values())))):
        HashedBigramEmbedding(**args)


def test_config_round_trip():
    check_config_round_trip(HashedBigramEmbedding(11, 3, padding_id=-1))
