"""One process of a local multi-process run with 2 CPU devices (used by test_multiprocess.py).

python tests/multiprocess_driver.py pretrain COORDINATOR NUM_PROCESSES PROCESS_ID WORKDIR [--config.k=v ...]
python tests/multiprocess_driver.py steps COORDINATOR NUM_PROCESSES PROCESS_ID OUT.npz
python tests/multiprocess_driver.py methods COORDINATOR NUM_PROCESSES PROCESS_ID OUT_DIR METHOD [METHOD ...]
"""

import os
import pathlib
import re
import socket
import subprocess
import sys

import jax
import numpy as np

from jssl import cli, parallel, train
from jssl.config import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.py")


def start(mode: str, target, *args, num_processes: int = 2) -> list[subprocess.Popen]:
  """Starts the processes of one local run of this driver (coordinator on a free local port);
  stderr is piped for the caller's error messages."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    coordinator = f"127.0.0.1:{s.getsockname()[1]}"
  return [
    subprocess.Popen(
      [sys.executable, __file__, mode, coordinator, str(num_processes), str(i), str(target), *args],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
      cwd=REPO,
    )
    for i in range(num_processes)
  ]


def fixed_batch(config, seed):
  """The same global batch whatever the process layout (tests/test_multiprocess.py uses it too)."""
  rng = np.random.default_rng(seed)
  size, batch = config.data.image_size, config.train.batch_size
  return {
    "view1": rng.random((batch, size, size, 3), dtype=np.float32),
    "view2": rng.random((batch, size, size, 3), dtype=np.float32),
    "label": rng.integers(0, 10, batch).astype(np.int32),
  }


def steps_config():
  config = load_config(SMOKE)
  config.parallel.devices = 0  # every device of every process
  config.optim.name, config.optim.base_lr = "sgd", 0.1
  return config


def run_steps(out):
  """Two steps on fixed global batches; process 0 writes losses and parameters."""
  config = steps_config()
  setup = train.make_setup(config)
  state, step = train.create_state(setup, seed=0), train.make_train_step(setup)
  local, index = config.train.batch_size // jax.process_count(), jax.process_index()
  losses = []
  for seed in (0, 1):
    rows = {k: v[index * local : (index + 1) * local] for k, v in fixed_batch(config, seed).items()}
    state, metrics = step(state, parallel.global_batch(rows, setup.mesh))
    losses.append(float(train.to_host(metrics["loss"])))
  if index == 0:
    leaves = train.to_host(jax.tree.leaves(state.params))
    np.savez(out, losses=np.array(losses), **{f"p{i}": leaf for i, leaf in enumerate(leaves)})


def run_methods(out_dir, methods):
  """Two steps of each of ``methods`` (view methods, tests/view_methods.py) on every device of
  the run; process 0 writes ``OUT_DIR/<method>.npz``: the losses and the state after the first step."""
  from view_methods import flat_state, method_config, steps_on_fixed_batches  # noqa: PLC0415

  pathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)
  for method in methods:
    config = method_config(method)
    first, losses = steps_on_fixed_batches(config, parallel.make_mesh(jax.devices()))
    if jax.process_index() == 0:
      np.savez(pathlib.Path(out_dir) / f"{method}.npz", losses=losses, **flat_state(first))


if __name__ == "__main__":
  # Read when the backend starts (first device use), so setting them here is in time. Not at
  # import: test_multiprocess.py imports this module into the 8-device test process.
  # The test session's other XLA flags (its compiler settings) are kept.
  inherited = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
  os.environ["XLA_FLAGS"] = f"{inherited} --xla_force_host_platform_device_count=2".strip()
  os.environ["JAX_PLATFORMS"] = "cpu"
  mode, coordinator, num_processes, process_id, target, *overrides = sys.argv[1:]
  if mode in ("steps", "methods"):
    parallel.initialize_distributed(
      coordinator=coordinator, num_processes=int(num_processes), process_id=int(process_id)
    )
    if mode == "steps":
      run_steps(target)
    else:
      sys.path.insert(0, str(REPO))  # benchmarks.random_batch
      run_methods(target, overrides)
  else:
    sys.exit(
      cli.main(
        [
          "pretrain",
          "--config",
          SMOKE,
          "--workdir",
          target,
          "--coordinator",
          coordinator,
          "--num-processes",
          num_processes,
          "--process-id",
          process_id,
          "--config.parallel.devices=0",
          *overrides,
        ]
      )
    )
