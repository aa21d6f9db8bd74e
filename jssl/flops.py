"""FLOP counts and peak FLOP/s, for model-FLOPs utilisation (MFU).

Two independent counts of a train step's FLOPs: XLA's cost analysis of the compiled
step (``compiled_flops``), and an analytic count from the forward pass's jaxpr
(``analytic_step_flops``: 2 x multiply-adds of every convolution and matrix product,
times 3 for forward, input gradient and weight gradient). Only convolutions and
matrix products are counted; elementwise work (BN, activations) is left out, as in
the usual MFU convention.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core


def peak_matmul_flops(size: int = 4096, dtype: str = "float32", repeats: int = 5) -> float:
  """FLOP/s of a ``[size, size] @ [size, size]`` product on the default device (median)."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype))
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.dtype(dtype))
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * size**3 / float(np.median(times))


def compiled_flops(compiled) -> float:
  """FLOPs XLA's cost analysis counts for a compiled computation (0 if it has none).

  For a computation partitioned over several devices this is one device's program.
  """
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per module
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops", 0.0))


def _conv_flops(eqn) -> float:
  out = eqn.outvars[0].aval.shape
  kernel = eqn.invars[1].aval.shape
  dims = eqn.params["dimension_numbers"]
  rhs_spec = dims.rhs_spec  # (out feature, in feature, spatial...)
  in_features = kernel[rhs_spec[1]]
  window = np.prod([kernel[d] for d in rhs_spec[2:]])
  # Each output element is a dot of length window * in_features / groups (groups already
  # divide the kernel's in-feature dimension).
  return 2.0 * np.prod(out) * window * in_features


def _dot_flops(eqn) -> float:
  (lhs_contract, _), _ = eqn.params["dimension_numbers"]
  lhs = eqn.invars[0].aval.shape
  return 2.0 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs[d] for d in lhs_contract])


def jaxpr_flops(jaxpr) -> float:
  """Convolution and matmul FLOPs of a (closed) jaxpr, counting nested calls and loops."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "cond":
      total += max(jaxpr_flops(branch) for branch in eqn.params["branches"])
    else:
      repeat = eqn.params.get("length", 1) if name == "scan" else 1
      for value in eqn.params.values():
        if isinstance(value, (jax_core.ClosedJaxpr, jax_core.Jaxpr)):
          total += repeat * jaxpr_flops(value)
  return total


def analytic_step_flops(setup, batch) -> float:
  """3 x the forward FLOPs of ``setup.task.loss`` on ``batch`` (the train step's count)."""
  from jssl import train  # noqa: PLC0415  (train imports the task machinery)

  state = jax.eval_shape(lambda: train.init_state(setup, jax.random.key(0)))
  forward = jax.make_jaxpr(setup.task.loss)(
    state.params, state.batch_stats, state.extra, batch, jax.random.key(0), jnp.int32(0)
  )
  return 3.0 * jaxpr_flops(forward)
