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


def task_defaults() -> dict:
  """``name -> ConfigDict`` of every task with settings of its own."""
  return {name: cls.defaults() for name, cls in TASKS.items() if cls.defaults() is not None}


__all__ = ["TASKS", "Task", "make_task", "task_defaults"]
