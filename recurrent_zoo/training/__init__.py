"""The upper floor: training runs, resumable, on one machine or several.

- `stages`: `train`, a short sequence of named stages (arguments, agree
  across workers, read data, build, pretrain, fit, choose, score, finish).
- `run`: the run folder every stage keeps its state in (`Run`).
- `tasks`: what is learned, as an object the stages are handed (`Task`;
  classification today).
- `arguments`, `history`, `callbacks`, `workers`: the run's arguments, its
  per-epoch record, the callbacks that make `fit` resumable, and the
  agreements between workers.
- `pretraining`, `refit`: the stages that run once per run.
- `evaluation`: scoring a saved model outside of any run.
"""

from recurrent_zoo.training.evaluation import evaluate, infer_corpus
from recurrent_zoo.training.history import MONITORS
from recurrent_zoo.training.run import Run, load_finished
from recurrent_zoo.training.stages import train
from recurrent_zoo.training.tasks import ClassificationTask, Task, task_for

__all__ = [
    "MONITORS",
    "ClassificationTask",
    "Run",
    "Task",
    "evaluate",
    "infer_corpus",
    "load_finished",
    "task_for",
    "train",
]
