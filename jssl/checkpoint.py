"""Orbax checkpoints of the whole training state, in ``WORKDIR/checkpoints``.

The state is saved as its Flax state dict (nested dicts of arrays), so what is on
disk does not depend on Python class layouts, and restored against an abstract
state whose shardings say where each array goes (which also lets a run resume on
a different device count). Orbax writes each step into a temporary directory and
renames it when complete, so a torn save is never restored.

A save that fails (an unwritable path, a full disk) raises ``CheckpointError`` naming the
step and the path: at once for a path that cannot be written, and for a save that fails in
the background at the first ``save`` call after it ended. A checkpoint that cannot be read
raises ``CheckpointError`` naming its step and the others; ``resume`` instead falls back to
the newest one that restores, and sets the damaged ones aside as ``damaged-<step>-<time>``.
"""

import logging
import os
import pathlib
import time

import flax.serialization
import jax
import orbax.checkpoint as ocp

from jssl.errors import CheckpointError, ConfigError, JsslError, MissingError

log = logging.getLogger("jssl")

DAMAGED_PREFIX = "damaged-"  # a set-aside step: not a number, so Orbax no longer lists it


def _reason(error: BaseException) -> str:
  """One line on why ``error`` happened: the first line of its innermost cause (TensorStore's
  outer message is a page of spec), its middle cut to keep it under 300 characters."""
  while (error.__cause__ or error.__context__) is not None:
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
  # TensorStore names the file first and says what went wrong last ("No space left on device").
  return text if len(text) <= 300 else f"{text[:140]} ... {text[-155:]}"


def _check_writable(directory: pathlib.Path) -> None:
  """Raises ``CheckpointError`` unless ``directory`` is (or can be made) a writable folder."""
  if directory.exists() and not directory.is_dir():
    raise CheckpointError(
      f"Cannot write checkpoints to {directory}: it is a file, not a folder. Move it away (or use another "
      "--workdir) and run the same command again."
    )
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".jssl-write-check-{jax.process_index()}-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as error:
    raise CheckpointError(
      f"Cannot write checkpoints to {directory}: {error.strerror or error}. Make it a writable folder "
      "(or use another --workdir) and run the same command again."
    ) from error


class Checkpointer:
  """Saves every ``save_every`` steps (and when forced), keeps the last ``max_to_keep``.

  ``read_only`` skips the check that the folder is writable (for eval and export).
  """

  def __init__(
    self,
    workdir: str | pathlib.Path,
    *,
    max_to_keep: int = 3,
    save_every: int = 1000,
    async_save: bool = True,
    read_only: bool = False,
  ):
    directory = pathlib.Path(workdir).resolve() / "checkpoints"
    if not read_only:
      _check_writable(directory)  # before training, not after its first steps
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      save_interval_steps=max(1, save_every),
      enable_async_checkpointing=async_save,
      create=True,
      # Orbax creates a save's folder in a thread that others wait for; when that fails they
      # wait out a 300 s barrier timeout and hold the process after the error. Creating the
      # folder in ``save`` (milliseconds) makes the failure raise there, with no such threads.
      async_options=ocp.options.AsyncOptions(create_directories_asynchronously=False),
    )
    self._manager = ocp.CheckpointManager(directory, options=options)
    self._pending: int | None = None  # the step of a background save not yet checked

  @property
  def directory(self) -> pathlib.Path:
    return pathlib.Path(self._manager.directory)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, *, force: bool = False) -> bool:
    """Starts an (async) save if ``step`` is due or ``force``; returns whether it did.

    Called every step: it also raises ``CheckpointError`` for an earlier background save that
    has failed (checking costs nothing while the save is still running).
    """
    if self._pending is not None and not self._manager.is_saving_in_progress():
      self.wait()
    if not force and not self._manager.should_save(step):
      return False
    self.wait()  # Orbax waits for the previous save too; this names its step if it failed
    try:
      saved = self._manager.save(step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)), force=force)
    except Exception as error:
      raise self._save_error(step, error) from error
    self._pending = step if saved else None
    return saved

  def _save_error(self, step: int | None, error: Exception) -> CheckpointError:
    which = f"of step {step} " if step is not None else ""
    return CheckpointError(
      f"Could not write the checkpoint {which}to {self.directory} ({_reason(error)}). Free space or fix "
      "permissions there, then run the same command to resume from the last complete checkpoint."
    )

  def restore(self, abstract_state, *, step: int | None = None):
    """The state at ``step`` (default: latest) laid out like ``abstract_state``
    (a pytree of ``jax.ShapeDtypeStruct`` with shardings, e.g. from ``jax.eval_shape``).

    Raises ``CheckpointError`` (naming the step and the other steps) if it cannot be read."""
    steps = sorted(self.all_steps())
    if not steps:
      raise MissingError(f"No complete checkpoint in {self.directory}; run `jssl pretrain` first.")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
      raise ConfigError(
        f"No checkpoint at step {step} in {self.directory}; available steps: {', '.join(map(str, steps))}."
      )
    try:
      return self._read(abstract_state, step)
    except JsslError:
      raise
    except Exception as error:
      others = [s for s in steps if s != step]
      hint = (
        f"Other steps: {', '.join(map(str, others))}; pass --step {others[-1]} to use one, or run `jssl pretrain` "
        "on this workdir: it resumes from the newest checkpoint that restores and sets damaged newer ones aside."
        if others
        else "It is the only checkpoint: pretrain again in a new workdir (or move this one aside)."
      )
      raise CheckpointError(
        f"The checkpoint at step {step} in {self.directory} cannot be restored: it is damaged or was not "
        f"written for this run's state ({_reason(error)}). {hint}"
      ) from error

  def _read(self, abstract_state, step: int):
    target = flax.serialization.to_state_dict(abstract_state)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except ValueError as error:
      # Checkpoints written before the train state had ``extra`` (2026-12-03) lack it.
      if "extra" not in target or "extra:" not in str(error) or "MISSING" not in str(error):
        raise
      if jax.tree.leaves(target["extra"]):
        raise ConfigError(
          f"The checkpoint at step {step} in {self.directory} was written by an older jssl that kept "
          "this task's state (DeepCluster's pseudo-labels, colorization's ab prior) in batch_stats; "
          "pretrain again in a new workdir."
        ) from error
      # The task keeps no extra state: the old checkpoint holds everything the state needs.
      old = {key: value for key, value in target.items() if key != "extra"}
      restored = {**self._manager.restore(step, args=ocp.args.StandardRestore(old)), "extra": target["extra"]}
    return flax.serialization.from_state_dict(abstract_state, restored)

  def resume(self, abstract_state) -> tuple:
    """``(state, step)`` of the newest checkpoint that restores, ``(None, None)`` if there is none.

    Newer checkpoints that do not restore while an older one does are damaged (a checkpoint
    written for another config fails at every step alike): each is logged and set aside as
    ``checkpoints/damaged-<step>-<time>``, kept for inspection but no longer listed, so the
    resumed run writes those steps afresh. If none restores, the newest one's error is raised
    and nothing is moved.
    """
    steps = sorted(self.all_steps(), reverse=True)
    failures = []
    for step in steps:
      try:
        state = self.restore(abstract_state, step=step)
      except CheckpointError as error:
        failures.append((step, error))
        continue
      for damaged, error in failures:
        aside = self.set_aside(damaged)
        log.warning(
          "The checkpoint at step %d could not be restored (%s); moved it to %s and resuming from step %d.",
          damaged,
          _reason(error.__cause__ or error),
          aside,
          step,
        )
      return state, step
    if failures:
      newest, error = failures[0]
      raise CheckpointError(
        f"None of the checkpoints in {self.directory} restores (tried steps {', '.join(map(str, steps))}); "
        f"step {newest}: {_reason(error.__cause__ or error)}. If the config changed since these were written, use the "
        "run's own config (its config.json); otherwise pretrain again in a new workdir."
      ) from error
    return None, None

  def set_aside(self, step: int) -> pathlib.Path:
    """Renames ``checkpoints/<step>`` to ``checkpoints/damaged-<step>-<time>`` (process 0; every
    process then stops listing it) and returns the new path."""
    aside = self.directory / f"{DAMAGED_PREFIX}{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    if jax.process_index() == 0:
      try:
        (self.directory / str(step)).rename(aside)
      except OSError as error:
        raise CheckpointError(
          f"Could not move the damaged checkpoint {self.directory / str(step)} aside ({_reason(error)}); "
          "move or delete it by hand, then run the same command again."
        ) from error
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # noqa: PLC0415

      multihost_utils.sync_global_devices(f"jssl checkpoint {step} set aside")
    self._manager.reload()
    return aside

  def wait(self) -> None:
    """Waits for the background save; raises ``CheckpointError`` if it failed."""
    pending, self._pending = self._pending, None
    try:
      self._manager.wait_until_finished()
    except Exception as error:
      raise self._save_error(pending, error) from error

  def close(self) -> None:
    self._manager.close()
