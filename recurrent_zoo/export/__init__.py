"""SavedModel export of a `TextClassifier` that serves raw strings anywhere.

    from recurrent_zoo.export import export_saved_model, load_predictor
    export_saved_model(model, "serving/imdb")        # -> serving/imdb/1
    predict = load_predictor("serving/imdb")         # highest version
    predict(["A moving, beautifully acted film."])["label"]

The export is a TF Serving model base path: one numbered folder per version,
each a complete SavedModel whose `serving_default` signature takes a batch of
strings and returns (`C` classes, `k = min(top_k, C)`):

    input  text                 string  [None]
    output probabilities        float32 [None, C]   (binary too: [1 - p, p])
           label_id             int64   [None]      argmax of probabilities
           label                string  [None]      class name of label_id
           probability          float32 [None]      probability of label_id
           top_k_ids            int64   [None, k]   only with more than two
           top_k_labels         string  [None, k]   classes and top_k > 0
           top_k_probabilities  float32 [None, k]

`assets.extra/labels.txt` (one class name per line, in label-id order) and
`assets.extra/recurrent_zoo.json` (classes, outputs, model config, versions)
sit beside it; `assets.extra` is TF Serving's place for files the graph does
not read.

The graph is TensorFlow ops only: it loads with `tf.saved_model.load` where
recurrent_zoo (or Keras) is not installed, and on a CPU whatever device the
model was trained on, because Keras's cuDNN code path is switched off while
tracing (a graph traced on a GPU would otherwise hold `CudnnRNN` ops that have
no CPU kernel). Text that is not valid UTF-8 is repaired in the graph (bad
bytes become U+FFFD) instead of failing the request.

The SavedModel's root is a bare `tf.Module` holding the signature's one
trace, the variables it reads and the vocabulary tables: no optimizer state,
no Keras objects. In Python, `tf.saved_model.load(path).serving_default(
tf.constant([...]))` calls it too.
"""

from recurrent_zoo.export.predictor import Predictor, load_predictor
from recurrent_zoo.export.saved_model import export_saved_model, find_saved_model
from recurrent_zoo.export.serving import (
    INPUT_KEY,
    LABELS_FILE,
    METADATA_FILE,
    SIGNATURE_KEY,
    serving_function,
)

__all__ = [
    "INPUT_KEY",
    "LABELS_FILE",
    "METADATA_FILE",
    "SIGNATURE_KEY",
    "Predictor",
    "export_saved_model",
    "find_saved_model",
    "load_predictor",
    "serving_function",
]
