"""Pretext tasks: how examples are made on the host, which model, which loss.

A task is a subclass of ``jssl.tasks.base.Task`` (its docstring is the contract) with a
``name``; the train loop knows nothing else about it. A new task is one new module in
this package: every module here is imported and its ``Task`` subclasses with a ``name``
are registered under that name, and a task's ``defaults()`` become ``config.<name>``.
"""

import importlib
import inspect
import pkgutil

from jssl.errors import ConfigError
from jssl.tasks.base import Task


def _discover() -> dict[str, type[Task]]:
  tasks = {}
  for module_info in pkgutil.iter_modules(__path__):
    module = importlib.import_module(f"{__name__}.{module_info.name}")
    for _, cls in inspect.getmembers(module, inspect.isclass):
      if issubclass(cls, Task) and cls.name and cls.__module__ == module.__name__:
        if cls.name in tasks and tasks[cls.name] is not cls:
          raise ConfigError(f"Two tasks are named {cls.name!r}: {tasks[cls.name]} and {cls}.")
        tasks[cls.name] = cls
  return dict(sorted(tasks.items()))


TASKS = _discover()


def make_task(config, *, mesh=None, source=None) -> Task:
  """The task named by ``config.task``; ``mesh`` is for losses that shard explicitly,
  ``source`` (a ``jssl.data.sources.Source``) for tasks that need to know their data."""
  if config.task not in TASKS:
    raise ConfigError(f"Unknown task {config.task!r}; choose one of {', '.join(TASKS)}.")
  return TASKS[config.task](config, mesh=mesh, source=source)


def _covered(key: str, prefixes) -> bool:
  return any(key == p or key.startswith(p + ".") for p in prefixes)


def _leaves(config) -> dict:
  """``dotted name -> value`` of every field, lists as tuples (a JSON round trip makes lists)."""
  out = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      out.update({f"{key}.{k}": v for k, v in _leaves(value).items()})
    else:
      out[key] = tuple(value) if isinstance(value, list) else value
  return out


def check_fields(config) -> None:
  """Refuses fields the chosen task ignores that are set away from their defaults: a field of
  another task's section, or a task-dependent shared field (``jssl.config.TASK_DEPENDENT``)
  that is not in the task's ``reads``. Silently ignored settings make runs that are not what
  their recipe says."""
  from jssl.config import TASK_DEPENDENT, default_config  # noqa: PLC0415  (jssl.config imports this package)

  if config.task not in TASKS:
    raise ConfigError(f"Unknown task {config.task!r}; choose one of {', '.join(TASKS)}.")
  reads = TASKS[config.task].reads
  defaults = _leaves(default_config())
  for key, value in _leaves(config).items():
    section = key.split(".")[0]
    if section in TASKS and section != config.task:
      why = f"it is {section}'s section"
    elif _covered(key, TASK_DEPENDENT) and not _covered(key, reads):
      users = [name for name, cls in TASKS.items() if _covered(key, cls.reads)]
      why = f"only {', '.join(users) or 'no task'} read{'s' if len(users) == 1 else ''} it"
    else:
      continue
    if key in defaults and value != defaults[key]:
      raise ConfigError(
        f"{key}={value!r} is set, but task {config.task} ignores it ({why}); remove it from the recipe "
        f"(default {defaults[key]!r}) or choose a task that uses it."
      )


def task_defaults() -> dict:
  """``name -> ConfigDict`` of every task with settings of its own."""
  return {name: cls.defaults() for name, cls in TASKS.items() if cls.defaults() is not None}


__all__ = ["TASKS", "Task", "check_fields", "make_task", "task_defaults"]
