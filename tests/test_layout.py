"""The layout: no import cycle among jssl's modules, losses that import no data, mesh or
training module, and TensorFlow's GPUs hidden once, in one place that every module using TF
passes through."""

import ast
import logging
import pathlib

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


def test_tf_gpus_are_hidden_in_one_place_every_tf_module_passes_through():
  files = sorted(JSSL.rglob("*.py"))
  assert [p for p in files if "set_visible_devices" in p.read_text()] == [JSSL / "data" / "tf_host.py"]
  assert "jssl.data.tf_host" in _top_level_imports(JSSL / "data" / "__init__.py")
  # Importing any jssl.data module runs jssl/data/__init__.py first.
  using_tf = [p for p in files if "tensorflow" in _top_level_imports(p)]
  assert JSSL / "data" / "augment.py" in using_tf and JSSL / "plots.py" in using_tf
  for path in using_tf:
    passes = _module_name(path).startswith("jssl.data") or any(
      m.startswith("jssl.data") for m in _top_level_imports(path)
    )
    assert passes, f"{path} imports TensorFlow but nothing from jssl.data, so TF may keep its GPUs"


def test_hide_gpus_hides_them_or_warns_when_too_late(monkeypatch, caplog):
  assert tf_host.GPUS_HIDDEN and tf.config.get_visible_devices("GPU") == []
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
