"""Every test sees 8 CPU devices, so sharded code paths run in the whole suite.

The suite compiles the same programs many times (every smoke run, in-process or in a
subprocess, builds the same train step), so a JAX compilation cache in a fresh temporary
folder is shared by the session and the processes it starts. Measured on tests/test_resume.py,
starting cold: 251 s of CPU time instead of 455 s. Fresh per session, so no result depends on an
old cache.

The suite also compiles with XLA's CPU backend optimisation off
(``--xla_backend_optimization_level=0``) unless ``XLA_FLAGS`` already sets a level: on CPU the
tests spend most of their time compiling tiny programs, not running them. Measured on the fast
suite (2 workers, 2-core machine, 2026-12-04): 5 min 14 s -> 3 min 54 s. Results differ from an
optimised build at float32 rounding only (fused vs separate operations); every comparison
between two runs (1 vs 8 devices, resume, two processes) is made under the same flags.
Training and benchmarks outside the tests use XLA's default.
"""

import atexit
import os
import shutil
import sys
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="jssl-test-jax-cache-")
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pathlib

import pytest

from jssl.data.tf_host import KERAS_EAGER_IMPORT  # importing tf_host does not import TF

# As jssl.data.tf_host does when it imports TensorFlow: TF's eager import of Keras (2-4 s in
# every worker; test modules import TF directly) fails quietly. No test uses Keras.
sys.modules.setdefault(KERAS_EAGER_IMPORT, None)

REPO = pathlib.Path(__file__).resolve().parents[1]


def first_updates(tx, grads, params):
  """The updates of optimizer ``tx``'s first step from ``grads`` at ``params``, jitted: one
  compile instead of the optimizer chain's ops compiled one by one (seconds on 2 cores)."""
  import jax  # noqa: PLC0415  (conftest stays light: JAX's flags are set above)

  return jax.jit(lambda g, p: tx.update(g, tx.init(p), p)[0])(grads, params)


@pytest.fixture
def smoke_config():
  from jssl.config import load_config  # noqa: PLC0415

  return load_config(REPO / "configs" / "smoke.py")


def pytest_collection_modifyitems(items):
  """Slow tests first, so that the minute-long ones start early and the short ones fill both
  workers at the end, instead of one long test running alone while the other worker idles.
  With ``--dist worksteal`` (the Makefile's): plain ``--dist load`` would hand the first
  quarter of this order, every slow test, to one worker."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
