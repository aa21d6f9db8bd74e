"""Frozen-feature evaluation of self-supervised encoders: linear probe and weighted kNN.

Everything here is a pure function of feature and label arrays; extracting the
features from an encoder happens elsewhere. Inputs may be NumPy or JAX arrays of any
float dtype; the work is done in float32 and results come back as Python floats.

Typical use::

  train_x, test_x = standardize(train_x, test_x)
  linear_probe(train_x, train_y, test_x, test_y, num_classes=10)["top1"]
  knn_top1(train_x, train_y, test_x, test_y, num_classes=10)  # standardising is optional here
"""

import dataclasses
import functools
import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jssl.errors import ConfigError

log = logging.getLogger("jssl")


# ----------------------------------------------------------------------------------
# Input checks. Every public function goes through these, so a bad array fails with a
# message that names the function and the argument instead of deep inside XLA.


def _features(x, *, name: str, fn: str) -> np.ndarray:
  """``x`` as a float32 ``[N, F]`` array with N, F >= 1 and only finite values."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ConfigError(f"{fn}: {name} must be a [N, F] feature matrix, got shape {x.shape}.")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ConfigError(f"{fn}: {name} is empty (shape {x.shape}).")
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise ConfigError(f"{fn}: {name} must hold real numbers, got dtype {x.dtype}.")
  x = x.astype(np.float32, copy=False)
  # A diverged encoder produces NaN features; say so rather than report 1/C accuracy.
  if not np.all(np.isfinite(x)):
    raise ConfigError(f"{fn}: {name} contains NaN or infinite values.")
  return x


def _labels(y, *, name: str, n: int, num_classes: int, fn: str) -> np.ndarray:
  """``y`` as an int32 ``[n]`` array with every value in ``[0, num_classes)``."""
  y = np.asarray(y)
  if y.ndim != 1:
    raise ConfigError(f"{fn}: {name} must be a [N] label vector, got shape {y.shape}.")
  if y.shape[0] != n:
    raise ConfigError(f"{fn}: {name} has {y.shape[0]} labels but the features have {n} rows.")
  # Float labels usually mean one-hot or soft targets were passed by mistake.
  if not np.issubdtype(y.dtype, np.integer):
    raise ConfigError(f"{fn}: {name} must be integer class ids, got dtype {y.dtype}.")
  if y.min() < 0 or y.max() >= num_classes:
    raise ConfigError(
      f"{fn}: {name} must lie in [0, {num_classes}) for num_classes={num_classes}, "
      f"got values in [{y.min()}, {y.max()}]."
    )
  return y.astype(np.int32, copy=False)


def _check_pair(train_x, train_y, test_x, test_y, *, num_classes: int, fn: str):
  """Validated float32 features and int32 labels for a train/test split."""
  if int(num_classes) != num_classes or num_classes < 1:
    raise ConfigError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  num_classes = int(num_classes)
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ConfigError(f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
  train_y = _labels(train_y, name="train_y", n=train_x.shape[0], num_classes=num_classes, fn=fn)
  test_y = _labels(test_y, name="test_y", n=test_x.shape[0], num_classes=num_classes, fn=fn)
  return train_x, train_y, test_x, test_y


# ----------------------------------------------------------------------------------
# Standardisation.


def standardize(train_x, test_x, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature z-score using the TRAIN statistics only.

  Both splits are mapped by ``(x - mean_train) / (std_train + eps)``: the test split
  must not contribute to the statistics, or the probe would see test information.
  ``eps`` keeps a feature that is constant on the train split finite (it becomes 0 there).

  Args:
    train_x: ``[N_train, F]`` float features.
    test_x: ``[N_test, F]`` float features.
    eps: added to the per-feature (population, ddof=0) standard deviation; >= 0.

  Returns:
    ``(train_z, test_z)``, float32 ``[N_train, F]`` and ``[N_test, F]``.

  Raises:
    ValueError: on empty or non-2-D inputs, a feature-count mismatch, non-finite
      values or eps < 0.
  """
  fn = "standardize"
  if not eps >= 0:
    raise ConfigError(f"{fn}: eps must be >= 0, got {eps}.")
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ConfigError(f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
  mean, scale = standardization(train_x, eps=eps)
  mean, scale = mean.astype(np.float32), scale.astype(np.float32)
  return (train_x - mean) * scale, (test_x - mean) * scale


def standardization(train_x: np.ndarray, *, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
  """``standardize``'s map as float64 ``(mean [F], scale [F])``: ``z = (x - mean) * scale``
  with ``scale = 1 / (std + eps)`` (population std of ``train_x [N, F]``); for folding a
  probe fit on ``z`` back onto raw features."""
  # Accumulated in float64: a float32 sum over ~10^6 rows loses digits.
  mean = train_x.mean(axis=0, dtype=np.float64)
  return mean, 1.0 / (train_x.std(axis=0, dtype=np.float64) + eps)


# ----------------------------------------------------------------------------------
# Linear probe: multinomial logistic regression solved to its optimum.
#
# The objective is scikit-learn's LogisticRegression (lbfgs, multinomial) with
# C = 1 / (l2 * N): the mean cross-entropy plus ``l2 * ||W||^2 / 2``, bias not penalised.
# It is convex (strictly, for l2 > 0), so a converged solver gives one answer whatever the
# start; a few epochs of minibatch Adam, the old probe, stopped 1-2 points short of it on
# learned features. Full-batch L-BFGS needs the whole feature matrix on the devices: a
# large one's rows are split over every local device (zero-weight padding rows even them
# out), so the probe of a large set runs on all chips with replicated [F, C] weights.

DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)

# Iterations in a row that neither lower the objective by an amount float32 can represent nor
# reach a new smallest gradient: then the solver has done what float32 allows. Near the optimum
# of a strongly regularised fit the remaining decrease (~grad^2 / l2) is below float32's
# resolution while the gradient still shrinks, so the value alone would stop too early.
_STALL_LIMIT = 10

# Feature matrices above this size are split over every local device; smaller ones stay on
# one, where the per-iteration all-reduces would cost more than they save (256 x 768 raw
# pixels, 8 forced CPU devices: 12 s per probe instead of 1.3 s on one).
_SHARD_ABOVE_BYTES = 1 << 30

# The preconditioner needs an eigen-decomposition of the features' F x F second moment: done
# when F is at most this (O(F^3)), else skipped. Wider features with at most this many rows
# (12,288 raw pixels of 4,096 64 px photos, minutes per fit as they were) are first reduced,
# exactly, to the span of the rows (an N x N Gram eigen-decomposition). Learned features
# (ResNet-50: 2,048; ViT-B: 768) never need either.
_PRECONDITION_MAX_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class LogisticFit:
  """A solved probe: ``w`` float32 [F, C], ``b`` float32 [C], and how the solver ended.

  ``loss`` is the objective (mean CE + l2 * ||w||^2 / 2) and ``grad_norm`` the largest
  absolute entry of its gradient, both at ``(w, b)`` over the rows that were fit.
  ``converged`` is ``grad_norm <= tol``; False means the solver stopped at ``max_iter`` or
  when float32 could no longer represent a decrease of the objective.
  """

  w: np.ndarray
  b: np.ndarray
  l2: float
  loss: float
  grad_norm: float
  iterations: int
  converged: bool


def _objective(params, x, y, weights, l2):
  """``sum_i weights_i * CE_i + l2 * ||w||^2 / 2`` for x [N, F], y [N], weights [N] summing to 1."""
  ce = optax.softmax_cross_entropy_with_integer_labels(x @ params["w"] + params["b"], y)
  return jnp.sum(weights * ce) + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))


def _max_abs(tree):
  return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree.leaves(tree)]))


@functools.partial(jax.jit, static_argnames=("max_iter",))
def _lbfgs(params, x, y, weights, l2, tol, precond, *, max_iter):
  """Minimises ``_objective`` from ``params``; returns (params, loss, grad max-abs, iterations).

  L-BFGS runs on ``v`` with ``w = P v``, ``P`` ~ (E[x x^T] + l2 I)^(-1/2) (``precond``): in
  ``v`` the curvature of the penalised objective is about the same in every direction, where
  in ``w`` it follows the spectrum of the correlated features. Measured on 5,000 standardised
  raw Fashion-MNIST images with l2 1e-3: 376 iterations to a gradient of 1e-5 with it; without
  it, 938 iterations ended stalled at 5.5e-5. The objective and its minimiser are unchanged;
  the stopping rule reads the gradient in ``w`` (``grad_w = P^-1 grad_v``).
  """

  # P = V diag(d) V^T with V [F, F] the second moment's eigenvectors; an empty ``precond``
  # (too many features to decompose) means P = I.
  def p(v):
    return precond["v"] @ (precond["d"][:, None] * (precond["v"].T @ v)) if precond else v

  def p_inv(v):
    return precond["v"] @ ((1 / precond["d"])[:, None] * (precond["v"].T @ v)) if precond else v

  def fun(q):
    return _objective({"w": p(q["v"]), "b": q["b"]}, x, y, weights, l2)

  def grad_max(grad_q):
    return _max_abs({"w": p_inv(grad_q["v"]), "b": grad_q["b"]})

  # scipy's L-BFGS-B (scikit-learn's solver) keeps 10 pairs and allows 50 line-search steps.
  opt = optax.lbfgs(memory_size=10, linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=50))
  value_and_grad = optax.value_and_grad_from_state(fun)

  def body(carry):
    q, state, value, best_grad, stalls, it = carry
    new_value, grad = value_and_grad(q, state=state)
    updates, state = opt.update(grad, state, q, value=new_value, grad=grad, value_fn=fun)
    q = optax.apply_updates(q, updates)
    # At the new point, from the line search:
    new_value, new_grad = optax.tree_utils.tree_get(state, "value"), grad_max(optax.tree_utils.tree_get(state, "grad"))
    progressed = (value - new_value > 1e-7 * jnp.maximum(jnp.abs(new_value), 1.0)) | (new_grad < best_grad)
    return (q, state, new_value, jnp.minimum(best_grad, new_grad), jnp.where(progressed, 0, stalls + 1), it + 1)

  def cond(carry):
    _, state, _, _, stalls, it = carry
    grad_norm = grad_max(optax.tree_utils.tree_get(state, "grad"))
    return (it == 0) | ((it < max_iter) & (grad_norm > tol) & (stalls < _STALL_LIMIT))

  q = {"v": p_inv(params["w"]), "b": params["b"]}
  inf = jnp.asarray(jnp.inf, jnp.float32)
  start = (q, opt.init(q), inf, inf, jnp.int32(0), jnp.int32(0))
  q, *_, iterations = jax.lax.while_loop(cond, body, start)
  params = {"w": p(q["v"]), "b": q["b"]}
  loss, grad = jax.value_and_grad(_objective)(params, x, y, weights, l2)
  return params, loss, _max_abs(grad), iterations


@jax.jit
def _second_moment_eigh(x, weights):
  """Eigen-decomposition of M = ``sum_i weights_i x_i x_i^T`` [F, F]: (eigenvalues [F], vectors [F, F])."""
  moment = jnp.einsum("nf,n,ng->fg", x, weights, x, precision=jax.lax.Precision.HIGHEST)
  return jnp.linalg.eigh(moment)


@jax.jit
def _row_span_basis(x, weights):
  """An orthonormal basis [F, N] of the span of the rows, through the N x N Gram matrix.

  With A = diag(sqrt(weights)) x and A A^T = U S U^T, the columns of A^T U S^(-1/2) are the
  eigenvectors of M = A^T A with nonzero eigenvalue. Directions with S below 1e-6 of the
  largest get a zero column (dropped: the rows have almost nothing along them).
  """
  a = x * jnp.sqrt(weights)[:, None]
  s, u = jnp.linalg.eigh(jnp.dot(a, a.T, precision=jax.lax.Precision.HIGHEST))
  kept = s > 1e-6 * jnp.max(s)
  scale = jnp.where(kept, jax.lax.rsqrt(jnp.where(kept, s, 1.0)), 0.0)
  return jnp.dot(a.T, u, precision=jax.lax.Precision.HIGHEST) * scale


@jax.jit
def _preconditioner(eigenvalues, eigenvectors, l2):
  """P = (M + l2 I)^(-1/2) from M's eigenpairs: ``{"v": vectors [F, F], "d": [F]}``."""
  # A floor keeps an unpenalised fit (l2 = 0) finite on features with a null direction.
  floor = jnp.maximum(l2, 1e-6 * jnp.max(eigenvalues))
  return {"v": eigenvectors, "d": jax.lax.rsqrt(jnp.maximum(eigenvalues, 0.0) + floor)}


@jax.jit
def _masked_accuracy(params, x, y, mask):
  """Accuracy over the rows where ``mask`` [N] is 1."""
  correct = jnp.argmax(x @ params["w"] + params["b"], axis=-1) == y
  return jnp.sum(mask * correct) / jnp.sum(mask)


class _DeviceRows:
  """Features [N, F] and labels [N] on the devices, rows split over them (zero-padded to a multiple)."""

  def __init__(self, x: np.ndarray, y: np.ndarray, *, devices=None):
    if devices is None:
      devices = jax.local_devices() if x.nbytes > _SHARD_ABOVE_BYTES else jax.local_devices()[:1]
    devices = list(devices)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("rows",))
    self._rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("rows"))
    self._replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    self.n = x.shape[0]
    self._pad = -self.n % len(devices)
    self.x, self.y = self.put(x), self.put(y)
    weights = self.mask() / self.n
    self._basis = None
    if x.shape[1] > _PRECONDITION_MAX_SIZE and self.x.shape[0] <= _PRECONDITION_MAX_SIZE:
      # Wider than tall: with an isotropic L2 penalty the optimal W lies in the span of the
      # training rows, so the probe is solved, exactly, on the rows' coordinates in an
      # orthonormal basis of that span ([N, r <= N] instead of [N, F]); ``fit`` maps W back.
      self._basis = _row_span_basis(self.x, weights)
      self.x = self.x @ self._basis
    # From every row: the preconditioner only changes how fast L-BFGS gets to the optimum.
    self._eigh = _second_moment_eigh(self.x, weights) if self.x.shape[1] <= _PRECONDITION_MAX_SIZE else None

  def put(self, a: np.ndarray) -> jax.Array:
    """``a`` [N, ...] padded with zero rows and split over the devices."""
    return jax.device_put(np.pad(a, [(0, self._pad)] + [(0, 0)] * (a.ndim - 1)), self._rows)

  def mask(self, rows: np.ndarray | None = None) -> jax.Array:
    """float32 [N + pad], 1 on ``rows`` (default: every real row), 0 elsewhere."""
    m = np.zeros(self.n, np.float32)
    m[slice(None) if rows is None else rows] = 1
    return self.put(m)

  def fit(
    self, mask: jax.Array, *, num_classes: int, l2: float, max_iter: int, tol: float, init: dict | None = None
  ) -> tuple[dict, LogisticFit]:
    """The probe solved on the rows of ``mask``; returns (device params, summary)."""
    if init is None:
      init = {"w": jnp.zeros((self.x.shape[1], num_classes), jnp.float32), "b": jnp.zeros((num_classes,), jnp.float32)}
    init = jax.device_put(init, self._replicated)
    weights = mask / jnp.sum(mask)
    precond = {} if self._eigh is None else _preconditioner(*self._eigh, jnp.float32(l2))
    started = time.perf_counter()
    params, loss, grad_norm, iterations = _lbfgs(
      init, self.x, self.y, weights, jnp.float32(l2), jnp.float32(tol), precond, max_iter=int(max_iter)
    )
    w = params["w"] if self._basis is None else self._basis @ params["w"]
    summary = LogisticFit(
      w=np.asarray(w),
      b=np.asarray(params["b"]),
      l2=float(l2),
      loss=float(loss),
      grad_norm=float(grad_norm),
      iterations=int(iterations),
      converged=bool(float(grad_norm) <= tol),
    )
    # One line per fit: the probe of a large set takes minutes and shows no other progress.
    log.info(
      "linear probe: l2 %g on %d rows, %d L-BFGS iterations, loss %.5f, max |grad| %.1e, %.1f s",
      l2,
      int(np.asarray(jnp.sum(mask))),
      summary.iterations,
      summary.loss,
      summary.grad_norm,
      time.perf_counter() - started,
    )
    return params, summary


def _check_solver(*, l2_grid, val_fraction, max_iter, tol, n, fn):
  l2_grid = tuple(float(v) for v in np.atleast_1d(np.asarray(l2_grid, dtype=np.float64)))
  if not l2_grid or not all(v >= 0 and math.isfinite(v) for v in l2_grid):
    raise ConfigError(f"{fn}: l2_grid must hold finite values >= 0, got {l2_grid}.")
  if not 0 <= val_fraction < 1:
    raise ConfigError(f"{fn}: val_fraction must be in [0, 1), got {val_fraction}.")
  if len(l2_grid) > 1 and (val_fraction == 0 or round(val_fraction * n) < 1 or round(val_fraction * n) >= n):
    raise ConfigError(
      f"{fn}: choosing among {len(l2_grid)} l2 values needs a validation part: val_fraction "
      f"{val_fraction} of {n} training examples leaves none (or nothing to fit)."
    )
  if int(max_iter) != max_iter or max_iter < 1:
    raise ConfigError(f"{fn}: max_iter must be a positive integer, got {max_iter}.")
  if not tol > 0:
    raise ConfigError(f"{fn}: tol must be > 0, got {tol}.")
  return l2_grid


def _choose_l2(rows: _DeviceRows, *, num_classes, l2_grid, val_fraction, seed, max_iter, tol):
  """(chosen l2, its fit's params on the fitting part, {l2: validation top-1}).

  One seeded permutation of the TRAIN rows sets ``val_fraction`` of them aside; the probe is
  fit on the rest for every l2, strongest first, each warm-started from the previous one
  (the regularisation path), to 10x the final ``tol``, and scored on the set-aside rows. The best validation top-1
  wins; a tie goes to the stronger l2. Nothing here sees a test split.
  """
  if len(l2_grid) == 1:
    return l2_grid[0], None, {}
  perm = np.random.default_rng(seed).permutation(rows.n)
  n_val = round(val_fraction * rows.n)
  fit_mask, val_mask = rows.mask(perm[n_val:]), rows.mask(perm[:n_val])
  best, best_params, scores, params = None, None, {}, None
  for l2 in sorted(l2_grid, reverse=True):
    # 10x looser than the final fit: a third of the iterations, and the held-out top-1 moves
    # by less than its own noise (raw Fashion-MNIST: 126 vs 376 iterations, 0.8097 vs 0.8095).
    params, _ = rows.fit(fit_mask, num_classes=num_classes, l2=l2, max_iter=max_iter, tol=10 * tol, init=params)
    scores[l2] = float(_masked_accuracy(params, rows.x, rows.y, val_mask))
    if best is None or scores[l2] > scores[best]:
      best, best_params = l2, params
  log.info(
    "linear probe: held-out top-1 by l2 %s; chose l2 %g%s",
    {k: round(v, 4) for k, v in scores.items()},
    best,
    " (an end of the grid: eval.linear_l2_grid could reach further)" if best in (min(l2_grid), max(l2_grid)) else "",
  )
  return best, best_params, scores


def fit_linear(
  train_x,
  train_y,
  *,
  num_classes: int,
  l2_grid=DEFAULT_L2_GRID,
  val_fraction: float = 0.1,
  seed: int = 0,
  max_iter: int = 1000,
  tol: float = 1e-5,
  devices=None,
) -> tuple[LogisticFit, dict[float, float]]:
  """Solves the linear probe on the train split, choosing its L2 strength on a part of it.

  Args:
    train_x: ``[N, F]`` float features, ideally standardised (``standardize``).
    train_y: ``[N]`` integer labels in ``[0, num_classes)``.
    num_classes: number of classes C >= 1.
    l2_grid: candidate ``l2`` values (>= 0); one value means no choice and no held-out part.
    val_fraction: share of the train rows held out to choose ``l2``, in (0, 1) for a grid.
    seed: seed of the permutation that picks the held-out rows (the only randomness).
    max_iter: L-BFGS iterations at most, per fit.
    tol: stop when every entry of the objective's gradient is at most this in absolute value.
    devices: the devices whose memory holds the rows (default: every local device for
      a feature matrix over 1 GiB, else the first one).

  Returns:
    ``(fit, val_top1_by_l2)``: the probe refit on every train row with the chosen ``l2``
    (warm-started from its held-out fit), and the held-out top-1 of each candidate
    (empty for a single value).

  Raises:
    ValueError: on bad shapes, dtypes, label ranges or solver settings.
  """
  fn = "fit_linear"
  if int(num_classes) != num_classes or num_classes < 1:
    raise ConfigError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  x = _features(train_x, name="train_x", fn=fn)
  y = _labels(train_y, name="train_y", n=x.shape[0], num_classes=int(num_classes), fn=fn)
  l2_grid = _check_solver(l2_grid=l2_grid, val_fraction=val_fraction, max_iter=max_iter, tol=tol, n=x.shape[0], fn=fn)
  rows = _DeviceRows(x, y, devices=devices)
  kw = dict(num_classes=int(num_classes), max_iter=max_iter, tol=tol)
  l2, init, scores = _choose_l2(rows, l2_grid=l2_grid, val_fraction=val_fraction, seed=seed, **kw)
  _, fit = rows.fit(rows.mask(), l2=l2, init=init, **kw)
  return fit, scores


def linear_probe(
  train_x,
  train_y,
  test_x,
  test_y,
  *,
  num_classes: int,
  l2_grid=DEFAULT_L2_GRID,
  val_fraction: float = 0.1,
  seed: int = 0,
  max_iter: int = 1000,
  tol: float = 1e-5,
  devices=None,
) -> dict:
  """Linear-probe accuracy: converged multinomial logistic regression on frozen features.

  ``fit_linear`` on the train split (L-BFGS to a gradient of at most ``tol``; L2 strength
  chosen on ``val_fraction`` of the TRAIN rows), then top-1 on the test split. Features
  should be standardised by the caller (``standardize``): the L2 grid assumes unit-scale
  features. Deterministic: the same arrays give the same result.

  Args:
    train_x: ``[N_train, F]`` float features.
    train_y: ``[N_train]`` integer labels in ``[0, num_classes)``.
    test_x: ``[N_test, F]`` float features.
    test_y: ``[N_test]`` integer labels in ``[0, num_classes)``.
    num_classes, l2_grid, val_fraction, seed, max_iter, tol, devices: as in ``fit_linear``.

  Returns:
    A dict of Python scalars: ``top1`` (test), ``train_top1``, ``l2`` (chosen), ``val_top1``
    (the chosen value's held-out top-1; absent for a single l2), ``loss`` and ``grad_norm``
    (train objective and its gradient's max-abs at the solution), ``iterations`` and
    ``converged`` of the final fit.

  Raises:
    ValueError: on empty or mismatched arrays, non-integer or out-of-range labels,
      non-finite features or bad solver settings.
  """
  fn = "linear_probe"
  train_x, train_y, test_x, test_y = _check_pair(train_x, train_y, test_x, test_y, num_classes=num_classes, fn=fn)
  _check_solver(l2_grid=l2_grid, val_fraction=val_fraction, max_iter=max_iter, tol=tol, n=train_x.shape[0], fn=fn)
  fit, scores = fit_linear(
    train_x,
    train_y,
    num_classes=num_classes,
    l2_grid=l2_grid,
    val_fraction=val_fraction,
    seed=seed,
    max_iter=max_iter,
    tol=tol,
    devices=devices,
  )
  result = {"top1": _top1(fit, test_x, test_y), "train_top1": _top1(fit, train_x, train_y), "l2": fit.l2}
  if scores:
    result["val_top1"] = scores[fit.l2]
  result.update(loss=fit.loss, grad_norm=fit.grad_norm, iterations=fit.iterations, converged=fit.converged)
  return result


def _top1(fit: LogisticFit, x: np.ndarray, y: np.ndarray) -> float:
  """Accuracy of the fitted probe on x [N, F], labels y [N] (in chunks: N may be large)."""
  correct = 0
  for start in range(0, x.shape[0], 65536):
    logits = x[start : start + 65536] @ fit.w + fit.b
    correct += int(np.sum(np.argmax(logits, axis=-1) == y[start : start + 65536]))
  return correct / x.shape[0]


# ----------------------------------------------------------------------------------
# Weighted kNN (InstDisc, Wu et al. 2018).


def _l2_normalize(x):
  # The floor keeps an all-zero row at zero (similarity 0 to everything) instead of NaN.
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


@functools.partial(jax.jit, static_argnames=("num_classes", "ks", "chunk_size"))
def _knn_predict(train_x, train_y, test_x, temperature, *, num_classes, ks, chunk_size):
  """Predicted classes ``[len(ks), N_test]`` int32, one row per k in ``ks`` (each at most
  N_train); ``N_test`` must be a multiple of chunk_size. The similarities and the top
  ``max(ks)`` neighbours are computed once for every k."""
  train_n = _l2_normalize(train_x)  # [N_train, F]
  chunks = test_x.reshape(-1, chunk_size, test_x.shape[1])  # [num_chunks, chunk, F]
  k_max = max(ks)

  def predict_chunk(chunk):
    # Only [chunk, N_train] similarities exist at a time: lax.map runs chunks in sequence.
    sims = _l2_normalize(chunk) @ train_n.T  # [chunk, N_train]
    top_sims, top_idx = jax.lax.top_k(sims, k_max)  # [chunk, k_max] each, most similar first
    # exp(s / T) overflows float32 once s / T > ~88 (e.g. T = 0.01). Subtracting each
    # row's best similarity rescales that row's votes by a positive constant, which
    # leaves the argmax unchanged. Take it with max(), not top_sims[:, :1]: on XLA:CPU
    # a slice of the top_k output turns top_k back into a full sort (~20x slower); a
    # smaller k likewise masks the votes past its k-th place rather than slicing.
    best = jnp.max(top_sims, axis=-1, keepdims=True)
    weights = jnp.exp((top_sims - best) / temperature)
    rows = jnp.arange(chunk_size)[:, None]
    rank = jnp.arange(k_max)
    predictions = []
    for k in ks:
      # Scatter-add rather than one_hot: [chunk, k, C] would be ~800 MB at k=200, C=1000.
      votes = jnp.zeros((chunk_size, num_classes), jnp.float32)
      votes = votes.at[rows, train_y[top_idx]].add(jnp.where(rank < k, weights, 0.0))
      predictions.append(jnp.argmax(votes, axis=-1).astype(jnp.int32))
    return jnp.stack(predictions)  # [len(ks), chunk]

  per_chunk = jax.lax.map(predict_chunk, chunks)  # [num_chunks, len(ks), chunk]
  return jnp.moveaxis(per_chunk, 1, 0).reshape(len(ks), -1)


def _check_knn_hparams(*, num_classes, k, temperature, chunk_size, fn):
  if int(num_classes) != num_classes or num_classes < 1:
    raise ConfigError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  if int(k) != k or k < 1:
    raise ConfigError(f"{fn}: k must be a positive integer, got {k}.")
  if not temperature > 0:
    raise ConfigError(f"{fn}: temperature must be > 0, got {temperature}.")
  if int(chunk_size) != chunk_size or chunk_size < 1:
    raise ConfigError(f"{fn}: chunk_size must be a positive integer, got {chunk_size}.")


def _knn(train_x, train_y, test_x, *, num_classes, ks, temperature, chunk_size):
  """Predictions ``[len(ks), N_test]`` on already-validated float32 / int32 NumPy arrays."""
  num_test = test_x.shape[0]
  ks = tuple(min(int(k), train_x.shape[0]) for k in ks)
  chunk_size = min(int(chunk_size), num_test)  # a small test set needs no padding
  # Pad with zero rows to whole chunks so every chunk has one static shape; the
  # padded rows' predictions are dropped below.
  pad = -num_test % chunk_size
  test_x = np.pad(test_x, ((0, pad), (0, 0)))
  pred = _knn_predict(
    jnp.asarray(train_x),
    jnp.asarray(train_y),
    jnp.asarray(test_x),
    jnp.float32(temperature),
    num_classes=int(num_classes),
    ks=ks,
    chunk_size=chunk_size,
  )
  return np.asarray(pred)[:, :num_test]


def knn_predict(
  train_x, train_y, test_x, *, num_classes: int, k: int = 200, temperature: float = 0.1, chunk_size: int = 1024
) -> np.ndarray:
  """Weighted-kNN class predictions (see ``knn_top1``), int32 ``[N_test]``.

  Ties in the vote go to the lowest class id; which train neighbours are kept when
  similarities tie at the k-th place is left to ``lax.top_k``.
  """
  fn = "knn_predict"
  _check_knn_hparams(num_classes=num_classes, k=k, temperature=temperature, chunk_size=chunk_size, fn=fn)
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ConfigError(f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
  train_y = _labels(train_y, name="train_y", n=train_x.shape[0], num_classes=int(num_classes), fn=fn)
  pred = _knn(
    train_x, train_y, test_x, num_classes=num_classes, ks=(k,), temperature=temperature, chunk_size=chunk_size
  )
  return pred[0]


def knn_top1(
  train_x, train_y, test_x, test_y, *, num_classes: int, k: int = 200, temperature: float = 0.1, chunk_size: int = 1024
) -> float:
  """Top-1 accuracy of the weighted kNN classifier of InstDisc (Wu et al. 2018).

  Features are L2-normalised, so similarity is cosine and any positive rescaling of a
  row changes nothing. Each test point takes its k most similar train points; a
  neighbour with similarity s votes ``exp(s / temperature)`` for its class, and the
  class with the largest summed vote is predicted. Test points are processed
  ``chunk_size`` at a time inside one jitted ``lax.map`` with ``lax.top_k``, so peak
  memory is ``O(chunk_size * N_train)``, never ``[N_test, N_train]``.

  Args:
    train_x: ``[N_train, F]`` float features (the memory bank).
    train_y: ``[N_train]`` integer labels in ``[0, num_classes)``.
    test_x: ``[N_test, F]`` float features.
    test_y: ``[N_test]`` integer labels in ``[0, num_classes)``.
    num_classes: number of classes C >= 1.
    k: neighbours per test point, >= 1; clipped to N_train.
    temperature: vote temperature, > 0; smaller trusts the nearest neighbours more.
    chunk_size: test points per chunk, >= 1; need not divide N_test.

  Returns:
    Fraction of test points whose prediction equals ``test_y``, a Python float.

  Raises:
    ValueError: on empty or mismatched arrays, non-integer or out-of-range labels,
      non-finite features, k < 1, temperature <= 0 or chunk_size < 1.
  """
  return _knn_top1s(train_x, train_y, test_x, test_y, num_classes, (k,), temperature, chunk_size, "knn_top1")[k]


def knn_top1s(
  train_x, train_y, test_x, test_y, *, num_classes: int, ks=(200, 20), temperature: float = 0.1, chunk_size: int = 1024
) -> dict[int, float]:
  """``{k: knn_top1(..., k=k)}`` for every k in ``ks``, with the similarities and the
  top ``max(ks)`` neighbours computed once (a pass over ``[N_test, N_train]`` per call, not per k)."""
  return _knn_top1s(train_x, train_y, test_x, test_y, num_classes, tuple(ks), temperature, chunk_size, "knn_top1s")


def _knn_top1s(train_x, train_y, test_x, test_y, num_classes, ks, temperature, chunk_size, fn) -> dict[int, float]:
  """``knn_top1s`` with ``fn``, the public name that errors carry."""
  if not ks:
    raise ConfigError(f"{fn}: ks must name at least one k.")
  for k in ks:
    _check_knn_hparams(num_classes=num_classes, k=k, temperature=temperature, chunk_size=chunk_size, fn=fn)
  train_x, train_y, test_x, test_y = _check_pair(train_x, train_y, test_x, test_y, num_classes=num_classes, fn=fn)
  pred = _knn(train_x, train_y, test_x, num_classes=num_classes, ks=ks, temperature=temperature, chunk_size=chunk_size)
  return {k: float(np.mean(row == test_y)) for k, row in zip(ks, pred, strict=True)}
