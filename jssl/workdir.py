"""A run's workdir: what ``jssl pretrain`` writes there, and reading it back.

* ``config.json``: the run's config, plus ``"data_facts"`` (``jssl.data.facts``): what the
  state's shapes depend on in the data, so ``jssl export`` and ``jssl eval`` restore the
  run without its training data. Runs from before the facts were recorded read their data.
* ``config_history/<n>.json``: the configs a resume with changed settings replaced, oldest
  first (``read_config_history``); ``jssl.workdir_guard`` refuses a change the checkpoints
  cannot resume.
* ``metrics.jsonl``: one JSON object per logged step (``MetricsWriter``, ``read_metrics``),
  mirrored to ``tensorboard/``.
* ``checkpoints/``: restored by ``restore_run`` onto a ``jssl.train.Setup``.

Reading a workdir does not import the trainer (``jssl.finetune`` writes metrics with
``MetricsWriter`` alone); the two functions that need a ``Setup`` import it when called.
"""

import json
import pathlib

import ml_collections

from jssl import config as config_lib
from jssl.data import facts as facts_lib
from jssl.data import tf_host
from jssl.data.sources import Source
from jssl.errors import MissingError

CONFIG_FILE = "config.json"
CONFIG_HISTORY = "config_history"
METRICS_FILE = "metrics.jsonl"
DATA_FACTS = "data_facts"  # the key of config.json that is not part of the config


def write_run_config(workdir: pathlib.Path, config: ml_collections.ConfigDict, source: Source) -> None:
  """Writes ``workdir/config.json``: ``config`` and the facts of its data ``source``. A different
  ``config.json`` already there is kept first, as the next ``config_history/<n>.json``."""
  workdir = pathlib.Path(workdir)
  record = json.loads(config_lib.to_json(config))
  record[DATA_FACTS] = facts_lib.record(source)
  text = json.dumps(record, indent=2, sort_keys=True)
  path = workdir / CONFIG_FILE
  if path.is_file():
    previous = path.read_text()
    if previous == text:
      return
    kept = _history_files(workdir)
    (workdir / CONFIG_HISTORY).mkdir(exist_ok=True)
    _write_atomically(workdir / CONFIG_HISTORY / f"{int(kept[-1].stem) + 1 if kept else 1}.json", previous)
  _write_atomically(path, text)


def _write_atomically(path: pathlib.Path, text: str) -> None:
  """Writes ``path`` whole or not at all (a killed process leaves the old file)."""
  partial = path.with_name(path.name + ".partial")
  partial.write_text(text)
  partial.replace(path)


def _history_files(workdir: pathlib.Path) -> list[pathlib.Path]:
  history = pathlib.Path(workdir) / CONFIG_HISTORY
  files = history.glob("*.json") if history.is_dir() else []
  return sorted((p for p in files if p.stem.isdigit()), key=lambda p: int(p.stem))


def read_config_history(workdir: pathlib.Path) -> list[dict]:
  """The records ``config.json`` held before each resume that changed it, oldest first."""
  return [json.loads(p.read_text()) for p in _history_files(workdir)]


def read_run_record(workdir: pathlib.Path) -> dict:
  """``workdir/config.json`` as written: the config's fields and ``"data_facts"`` (if recorded)."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise MissingError(f"{path} not found: is {workdir} a `jssl pretrain` workdir?")
  return json.loads(path.read_text())


def read_run_config(workdir: pathlib.Path) -> ml_collections.ConfigDict:
  """The config a ``jssl pretrain`` run saved in ``workdir/config.json``."""
  record = read_run_record(workdir)
  record.pop(DATA_FACTS, None)
  return config_lib.from_json(json.dumps(record))


def read_data_facts(workdir: pathlib.Path) -> dict | None:
  """The run's recorded data facts; ``None`` for a run from before they were recorded."""
  return read_run_record(workdir).get(DATA_FACTS)


def run_setup(workdir: pathlib.Path, config: ml_collections.ConfigDict, *, mesh=None):
  """The ``jssl.train.Setup`` of the run in ``workdir`` for ``config`` (its own, or with
  eval overrides), built from the recorded data facts: no data is read. Runs without
  recorded facts read ``config.data`` as pretraining did. ``mesh`` defaults to ``config``'s."""
  from jssl.train import make_setup  # noqa: PLC0415  (reading a workdir does not need the trainer)

  facts = read_data_facts(workdir)
  return make_setup(config, mesh=mesh, source=None if facts is None else facts_lib.source_from_facts(facts))


def restore_run(setup, workdir: pathlib.Path, *, step: int | None = None, resume: bool = False) -> tuple:
  """``(state, step)``: the run's ``TrainState`` at ``step`` (default: latest) for ``setup``.

  A checkpoint that cannot be read raises ``jssl.errors.CheckpointError`` naming its step and
  the others. ``resume=True`` (what ``jssl pretrain`` does) takes instead the newest checkpoint
  that restores, setting damaged newer ones aside (``jssl.checkpoint.Checkpointer.resume``);
  ``(None, None)`` if there is none.
  """
  from jssl.checkpoint import Checkpointer  # noqa: PLC0415  (Orbax only when restoring)
  from jssl.train import abstract_state  # noqa: PLC0415  (reading a workdir does not need the trainer)

  checkpointer = Checkpointer(workdir, async_save=False, read_only=not resume)
  try:
    if resume:
      return checkpointer.resume(abstract_state(setup))
    step = checkpointer.latest_step() if step is None else step
    return checkpointer.restore(abstract_state(setup), step=step), step
  finally:
    checkpointer.close()


class MetricsWriter:
  """The one logging path: ``metrics.jsonl`` (one object per logged step) and TensorBoard."""

  def __init__(self, workdir: pathlib.Path, *, resume_step: int, enabled: bool):
    self.enabled = enabled
    self.path = pathlib.Path(workdir) / METRICS_FILE
    self._tb = None
    if not enabled:
      return
    # A resumed run rewrites history after its checkpoint, so drop lines past it.
    if self.path.exists():
      kept = [json.dumps(m) for m in read_metrics(workdir) if m["step"] <= resume_step]
      self.path.write_text("".join(line + "\n" for line in kept))
    tf = tf_host.load()  # only process 0 writes TensorBoard
    self._tb = tf.summary.create_file_writer(str(pathlib.Path(workdir) / "tensorboard"))
    self._tf = tf

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    with self._tb.as_default(step=int(step)):
      for key, value in scalars.items():
        self._tf.summary.scalar(key, float(value))
    self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir) -> list[dict]:
  """The records of ``workdir/metrics.jsonl``; a line torn by a killed process is ignored."""
  path = pathlib.Path(workdir) / METRICS_FILE
  records = []
  for line in path.read_text().splitlines() if path.exists() else []:
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records
