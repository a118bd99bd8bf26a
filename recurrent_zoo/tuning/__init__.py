"""Hyperparameter search over the prebuilt text classifiers with keras-tuner.

`TextClassifierHyperModel` is the search space (hidden units per layer
first); `run_search` runs a resumable search (standalone, or as keras-tuner's
chief or a worker) and writes the trial table, the best hyperparameters, a
plot and the retrained best model. `recurrent-zoo tune` is its command line.
"""

from recurrent_zoo.distribute import (
    DevicePlan,
    enable_memory_growth,
    plan_devices,
    role,
    trial_devices,
)
from recurrent_zoo.tuning.hypermodel import TextClassifierHyperModel, build_vocabulary
from recurrent_zoo.tuning.search import (
    OBJECTIVE,
    TUNERS,
    SearchResult,
    TrialRecord,
    format_table,
    load_task_data,
    make_tuner,
    plot_val_accuracy,
    run_search,
    trial_records,
)

__all__ = [
    "OBJECTIVE",
    "TUNERS",
    "DevicePlan",
    "SearchResult",
    "TextClassifierHyperModel",
    "TrialRecord",
    "build_vocabulary",
    "enable_memory_growth",
    "format_table",
    "load_task_data",
    "make_tuner",
    "plan_devices",
    "plot_val_accuracy",
    "role",
    "run_search",
    "trial_devices",
    "trial_records",
]
