"""One process of a local multi-process pretraining run (used by test_multiprocess.py).

  python tests/multiprocess_driver.py COORDINATOR NUM_PROCESSES PROCESS_ID WORKDIR [--config.k=v ...]
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

from jssl import cli  # noqa: E402

if __name__ == "__main__":
  coordinator, num_processes, process_id, workdir, *overrides = sys.argv[1:]
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator, num_processes=int(num_processes), process_id=int(process_id))
  config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "smoke.py")
  sys.exit(cli.main(["pretrain", "--config", config, "--workdir", workdir, *overrides]))
