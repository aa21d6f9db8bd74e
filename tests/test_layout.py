"""The layout: no import cycle among jssl's modules, losses that import no data, mesh or
training module, and TensorFlow imported in one place, at first use, with its GPUs hidden
there."""

import ast
import logging
import pathlib
import re
import subprocess
import sys

import tensorflow as tf

from jssl.data import tf_host

JSSL = pathlib.Path(__file__).resolve().parents[1] / "jssl"


def _module_name(path: pathlib.Path) -> str:
  return ".".join(path.relative_to(JSSL.parent).with_suffix("").parts).removesuffix(".__init__")


def _top_level_imports(path: pathlib.Path) -> set[str]:
  """Modules imported at the top of ``path`` (``from a import b`` counts as a and a.b); imports in
  functions or ``if TYPE_CHECKING:`` blocks don't run at import time and are left out."""
  found = set()
  for node in ast.parse(path.read_text()).body:
    if isinstance(node, ast.Import):
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
  return found


def _graph() -> dict[str, list[str]]:
  """``module -> the jssl modules it imports at its top`` over the whole package."""
  modules = {_module_name(p): p for p in JSSL.rglob("*.py")}
  return {m: sorted(_top_level_imports(p) & modules.keys() - {m}) for m, p in modules.items()}


def test_losses_import_no_data_mesh_or_training_module():
  graph = _graph()
  losses = [m for m in graph if m.startswith("jssl.losses")]
  assert "jssl.losses.swav" in losses and "jssl.losses.ntxent_chunked" in losses
  forbidden = ("jssl.data", "jssl.parallel", "jssl.train", "jssl.tasks", "jssl.workdir", "jssl.checkpoint")
  for module in losses:
    assert not [d for d in graph[module] if d.startswith(forbidden)], (module, graph[module])


def test_jssl_modules_import_no_cycle():
  graph = _graph()
  assert "jssl.data.sources.registry" in graph and "jssl.data.video" in graph
  # The cycle this layout removed: video imported sources, and sources imported video.
  assert not any(d.startswith("jssl.data.sources") for d in graph["jssl.data.video"])
  done, open_ = set(), []

  def visit(module):
    open_.append(module)
    for dep in graph[module]:
      assert dep not in open_, f"import cycle: {' -> '.join([*open_, dep])}"
      if dep not in done:
        visit(dep)
    open_.pop()
    done.add(module)

  for module in graph:
    if module not in done:
      visit(module)


def test_tensorflow_is_imported_in_one_place_that_hides_its_gpus():
  files = sorted(JSSL.rglob("*.py"))
  assert [p for p in files if "set_visible_devices" in p.read_text()] == [JSSL / "data" / "tf_host.py"]
  # No module imports tensorflow itself, at its top or in a function: every use goes through
  # jssl.data.tf_host (the stand-in ``tf`` or ``load()``), which hides the GPUs at the import.
  importing = [p for p in files if re.search(r"^\s*(import tensorflow\b|from tensorflow\b)", p.read_text(), re.M)]
  assert importing == [JSSL / "data" / "tf_host.py"]
  using = [p for p in files if "jssl.data.tf_host" in _top_level_imports(p)]
  assert JSSL / "data" / "augment.py" in using and JSSL / "plots.py" in using


def test_importing_the_trainer_tasks_and_tools_does_not_import_tensorflow():
  # The step benchmarks run on accelerator images without TensorFlow, and every process the
  # suite starts saves the seconds of importing it unless it reads data.
  code = (
    "import sys, jssl.train, jssl.tasks, jssl.cli, jssl.evaluate, jssl.export, jssl.finetune, jssl.plots\n"
    "from jssl.data import pipeline, augment, tf_host\n"
    "assert 'tensorflow' not in sys.modules, 'imported'\n"
    "assert tf_host.tf.constant(2).numpy() == 2 and 'tensorflow' in sys.modules\n"
    "assert tf_host.gpus_hidden() and tf_host.tf.config.get_visible_devices('GPU') == []\n"
    # TF's eager import of Keras skipped (seconds), and unblocked after: a later import works.
    "assert 'keras' not in sys.modules and 'keras.src.optimizers' not in sys.modules, 'keras'\n"
  )
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-2000:]


def test_hide_gpus_hides_them_or_warns_when_too_late(monkeypatch, caplog):
  assert tf_host.gpus_hidden() and tf.config.get_visible_devices("GPU") == []
  assert tf_host.tf.config is tf.config  # the stand-in is the module
  calls = []
  monkeypatch.setattr(tf.config, "set_visible_devices", lambda devices, kind: calls.append((devices, kind)))
  assert tf_host.hide_gpus() and calls == [([], "GPU")]

  def too_late(devices, kind):
    raise RuntimeError("Visible devices cannot be modified after being initialized")

  monkeypatch.setattr(tf.config, "set_visible_devices", too_late)
  monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind=None: [])
  with caplog.at_level(logging.WARNING, logger="jssl"):
    assert tf_host.hide_gpus()  # too late, but TF found no GPU: nothing held
    assert not caplog.records
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind=None: ["/physical_device:GPU:0"])
    assert not tf_host.hide_gpus()
  assert len(caplog.records) == 1 and "before jssl could hide its GPUs" in caplog.records[0].getMessage()
