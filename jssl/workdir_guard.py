"""Guards a workdir against being lost or shared: what ``jssl pretrain`` checks before it writes.

* ``prepare``: the workdir is a folder (or can be made one), else a one-line error.
* ``lock``: one run at a time holds ``WORKDIR/.lock`` (``fcntl.flock``: the kernel releases it
  when the holder exits, however it exits, so a dead run's lock never blocks); the file names
  the holder's pid and host for the refusal message.
* ``check_resume``: a new config resumes the run only if its training state has the structure,
  shapes and dtypes of the saved config's (built from the recorded data facts, so no data is
  read); a change that keeps them (steps, lr, logging) is returned, field by field, for the log.
* ``move_aside``: ``--restart`` moves the old run into ``WORKDIR/previous/<time>/``; nothing is
  ever deleted.
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import pathlib
import socket
from typing import Any

import jax
import ml_collections

from jssl import config as config_lib
from jssl import workdir as workdir_lib
from jssl.data import facts as facts_lib
from jssl.errors import ConfigError

log = logging.getLogger("jssl")

LOCK_FILE = ".lock"
PREVIOUS_DIR = "previous"


class _Absent:
  """A field one of two configs lacks."""

  def __repr__(self):
    return "(absent)"


ABSENT = _Absent()


def prepare(workdir: pathlib.Path) -> None:
  """Creates ``workdir`` (and its parents) unless it is already a folder; one-line errors otherwise."""
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ConfigError(f"--workdir {workdir} is a file, not a folder; pass a new folder or a run's workdir.")
  for parent in workdir.parents:
    if parent.exists() and not parent.is_dir():
      raise ConfigError(f"--workdir {workdir} is under {parent}, which is a file; pass a folder elsewhere.")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ConfigError(
      f"cannot create --workdir {workdir} ({error.strerror or error}); pass a folder you can write to."
    ) from error


@contextlib.contextmanager
def lock(workdir: pathlib.Path):
  """Holds ``workdir``'s exclusive lock for the ``with`` block, or refuses at once, naming the holder.

  Locks are per open file, so a second ``lock`` of the same workdir in the same process is
  refused too. The file is never removed: a removed lock file would let two runs lock two files.
  """
  path = pathlib.Path(workdir) / LOCK_FILE
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as error:
    raise ConfigError(
      f"cannot write in --workdir {workdir} ({error.strerror or error}); pass a folder you can write to."
    ) from error
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise ConfigError(
        f"{workdir} is in use by {_holder(path)}; wait for that run to end (or stop it), or pass another --workdir."
      ) from None
    os.ftruncate(fd, 0)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode())
    yield
  finally:
    os.close(fd)  # releases the lock


def _holder(path: pathlib.Path) -> str:
  """Who holds the lock at ``path``, from what it wrote there."""
  try:
    holder = json.loads(path.read_text())
    return f"pid {holder['pid']} on {holder['host']} (a `jssl pretrain` started {holder['started']})"
  except (OSError, ValueError, KeyError, TypeError):  # the holder has locked but not yet written
    return "another `jssl pretrain`"


def config_changes(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
  """``(dotted field, old value, new value)`` for every leaf that differs, sorted by field;
  ``ABSENT`` stands for a field one side lacks."""
  changes = []
  for key in sorted(old.keys() | new.keys()):
    a, b = old.get(key, ABSENT), new.get(key, ABSENT)
    if isinstance(a, dict) and isinstance(b, dict):
      changes += config_changes(a, b, f"{prefix}{key}.")
    elif a != b:
      changes.append((f"{prefix}{key}", a, b))
  return changes


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
  """``"train.steps 8 -> 12, task "simclr" -> "byol""``: values as JSON writes them."""

  def show(value):
    return repr(value) if value is ABSENT else json.dumps(value)

  return ", ".join(f"{field} {show(a)} -> {show(b)}" for field, a, b in changes)


def state_difference(old_state, new_state) -> str | None:
  """The first place where two abstract states differ in structure, shape or dtype, or ``None``."""

  def leaves(state):
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return {jax.tree_util.keystr(path): (tuple(x.shape), str(x.dtype)) for path, x in flat}

  old, new = leaves(old_state), leaves(new_state)
  for name in sorted(old.keys() | new.keys()):
    a, b = old.get(name), new.get(name)
    if a != b:
      return f"{name}: {_show_leaf(a)} -> {_show_leaf(b)}"
  return None


def _show_leaf(leaf) -> str:
  return "(absent)" if leaf is None else f"{leaf[1]}{list(leaf[0])}"


def check_resume(workdir: pathlib.Path, config: ml_collections.ConfigDict, setup) -> list[tuple[str, Any, Any]]:
  """What ``config`` (with ``setup``, a ``jssl.train.Setup`` of it) changes from the run saved in
  ``workdir``: ``[]`` for a new workdir or the same config. Writes nothing.

  Raises:
    ConfigError: the change gives the training state another structure, shape or dtype, so the
      run's checkpoints cannot resume it (names the changed fields and what to do).
  """
  from jssl.train import abstract_state  # noqa: PLC0415  (jssl.train imports this module)

  workdir = pathlib.Path(workdir)
  if not (workdir / workdir_lib.CONFIG_FILE).is_file():
    return []
  try:
    saved = workdir_lib.read_run_record(workdir)
  except ValueError as error:
    raise ConfigError(
      f"{workdir / workdir_lib.CONFIG_FILE} is not readable JSON ({error}); pass another --workdir, or "
      "--restart to move the run there aside and start afresh."
    ) from error
  # Both sides as the current jssl reads them: fields added since get defaults, moved ones their new names.
  old_config = workdir_lib.read_run_config(workdir)
  old_record = json.loads(config_lib.to_json(old_config))
  old_record[workdir_lib.DATA_FACTS] = saved.get(workdir_lib.DATA_FACTS)
  new_record = json.loads(config_lib.to_json(config))
  new_record[workdir_lib.DATA_FACTS] = facts_lib.record(setup.source)
  if old_record[workdir_lib.DATA_FACTS] is None:  # a run from before the facts were recorded
    new_record[workdir_lib.DATA_FACTS] = None
  changes = config_changes(old_record, new_record)
  if not changes:
    return []
  try:
    # The state's shapes do not depend on the mesh (a run restores onto any device count).
    old_state = abstract_state(workdir_lib.run_setup(workdir, old_config, mesh=setup.mesh))
  except Exception as error:  # e.g. a config of an older jssl: the restore decides
    log.warning("Cannot rebuild the state of the run saved in %s (%s); resuming unchecked.", workdir, error)
    return changes
  difference = state_difference(old_state, abstract_state(setup))
  if difference is not None:
    raise ConfigError(
      f"{workdir} holds a run whose training state this config changes ({describe_changes(changes)}; the state "
      f"differs at {difference}), so its checkpoints cannot resume it: pass another --workdir, or --restart to "
      f"move that run into {workdir / PREVIOUS_DIR}/ and start afresh."
    )
  return changes


def move_aside(workdir: pathlib.Path) -> pathlib.Path | None:
  """Moves everything in ``workdir`` but the lock and earlier runs into a new
  ``workdir/previous/<time>/``; returns that folder (``None``: nothing to move). Call it holding the lock."""
  workdir = pathlib.Path(workdir)
  entries = [p for p in workdir.iterdir() if p.name not in (LOCK_FILE, PREVIOUS_DIR)]
  if not entries:
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  target, n = workdir / PREVIOUS_DIR / stamp, 1
  while target.exists():
    n += 1
    target = workdir / PREVIOUS_DIR / f"{stamp}-{n}"
  target.mkdir(parents=True)
  for entry in entries:
    entry.rename(target / entry.name)
  return target
