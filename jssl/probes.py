"""Frozen-feature evaluation of self-supervised encoders: linear probe and weighted kNN.

Everything here is a pure function of feature and label arrays; extracting the
features from an encoder happens elsewhere. Inputs may be NumPy or JAX arrays of any
float dtype; the work is done in float32 and results come back as Python floats.

Typical use::

  train_x, test_x = standardize(train_x, test_x)
  linear_probe(train_x, train_y, test_x, test_y, num_classes=10)["top1"]
  knn_top1(train_x, train_y, test_x, test_y, num_classes=10)  # standardising is optional here
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


# ----------------------------------------------------------------------------------
# Input checks. Every public function goes through these, so a bad array fails with a
# message that names the function and the argument instead of deep inside XLA.


def _features(x, *, name: str, fn: str) -> np.ndarray:
  """``x`` as a float32 ``[N, F]`` array with N, F >= 1 and only finite values."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{fn}: {name} must be a [N, F] feature matrix, got shape {x.shape}.")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{fn}: {name} is empty (shape {x.shape}).")
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise ValueError(f"{fn}: {name} must hold real numbers, got dtype {x.dtype}.")
  x = x.astype(np.float32, copy=False)
  # A diverged encoder produces NaN features; say so rather than report 1/C accuracy.
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{fn}: {name} contains NaN or infinite values.")
  return x


def _labels(y, *, name: str, n: int, num_classes: int, fn: str) -> np.ndarray:
  """``y`` as an int32 ``[n]`` array with every value in ``[0, num_classes)``."""
  y = np.asarray(y)
  if y.ndim != 1:
    raise ValueError(f"{fn}: {name} must be a [N] label vector, got shape {y.shape}.")
  if y.shape[0] != n:
    raise ValueError(f"{fn}: {name} has {y.shape[0]} labels but the features have {n} rows.")
  # Float labels usually mean one-hot or soft targets were passed by mistake.
  if not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{fn}: {name} must be integer class ids, got dtype {y.dtype}.")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(
        f"{fn}: {name} must lie in [0, {num_classes}) for num_classes={num_classes}, "
        f"got values in [{y.min()}, {y.max()}].")
  return y.astype(np.int32, copy=False)


def _check_pair(train_x, train_y, test_x, test_y, *, num_classes: int, fn: str):
  """Validated float32 features and int32 labels for a train/test split."""
  if int(num_classes) != num_classes or num_classes < 1:
    raise ValueError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  num_classes = int(num_classes)
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(
        f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
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
    raise ValueError(f"{fn}: eps must be >= 0, got {eps}.")
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(
        f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
  # Statistics accumulated in float64: a float32 sum over ~10^6 rows loses digits.
  mean = train_x.mean(axis=0, dtype=np.float64)
  std = train_x.std(axis=0, dtype=np.float64)
  scale = (1.0 / (std + eps)).astype(np.float32)
  mean = mean.astype(np.float32)
  return (train_x - mean) * scale, (test_x - mean) * scale


# ----------------------------------------------------------------------------------
# Linear probe: multinomial logistic regression.


def _penalised_ce(logits, y, w, weight_decay):
  """Mean cross-entropy plus ``weight_decay * ||w||^2 / 2``; the bias is not penalised."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return ce + 0.5 * weight_decay * jnp.sum(w ** 2)


def _objective(params, x, y, weight_decay):
  """Training objective of the probe on features ``x`` [B, F] and labels ``y`` [B]."""
  return _penalised_ce(x @ params["w"] + params["b"], y, params["w"], weight_decay)


@functools.partial(jax.jit, static_argnames=("batch_size", "learning_rate"))
def _train_epoch(params, opt_state, x, y, key, weight_decay, *, batch_size, learning_rate):
  """One epoch of Adam over a fresh permutation of the train set; returns mean loss.

  Only full minibatches are taken; the ``N mod batch_size`` examples left over by
  this epoch's permutation are skipped, and since the permutation changes every epoch
  each example is still seen in most epochs. All shapes are static, so the epoch
  compiles once per (N, F, C, batch_size, learning_rate).
  """
  num_batches = x.shape[0] // batch_size
  perm = jax.random.permutation(key, x.shape[0])
  batches = perm[: num_batches * batch_size].reshape(num_batches, batch_size)
  opt = optax.adam(learning_rate)

  def step(carry, idx):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(_objective)(params, x[idx], y[idx], weight_decay)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batches)
  return params, opt_state, losses.mean()


@jax.jit
def _evaluate(params, x, y, weight_decay):
  """(objective, accuracy) of the linear classifier on the whole of ``x``."""
  logits = x @ params["w"] + params["b"]
  objective = _penalised_ce(logits, y, params["w"], weight_decay)
  accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
  return objective, accuracy


def _check_hparams(*, epochs, batch_size, learning_rate, weight_decay, fn):
  if int(epochs) != epochs or epochs < 1:
    raise ValueError(f"{fn}: epochs must be a positive integer, got {epochs}.")
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"{fn}: batch_size must be a positive integer, got {batch_size}.")
  if not learning_rate > 0:
    raise ValueError(f"{fn}: learning_rate must be > 0, got {learning_rate}.")
  if not weight_decay >= 0:
    raise ValueError(f"{fn}: weight_decay must be >= 0, got {weight_decay}.")


def _fit(x, y, *, num_classes, epochs, batch_size, learning_rate, weight_decay, seed):
  """Training loop on already-validated arrays; returns float32 jax params."""
  # Zero init: the problem is convex, so the start only matters for speed, and it
  # leaves the seed to control the one source of randomness, the shuffling.
  params = {
      "w": jnp.zeros((x.shape[1], num_classes), jnp.float32),
      "b": jnp.zeros((num_classes,), jnp.float32),
  }
  learning_rate = float(learning_rate)
  opt_state = optax.adam(learning_rate).init(params)
  x, y = jnp.asarray(x), jnp.asarray(y)  # one host->device copy for all epochs
  # With fewer examples than a batch, train full-batch rather than not at all.
  batch_size = min(int(batch_size), x.shape[0])
  key = jax.random.key(seed)
  wd = jnp.float32(weight_decay)
  for epoch in range(int(epochs)):
    params, opt_state, _ = _train_epoch(
        params, opt_state, x, y, jax.random.fold_in(key, epoch), wd,
        batch_size=batch_size, learning_rate=learning_rate)
  return params


def fit_linear(train_x, train_y, *, num_classes: int, epochs: int = 10,
               batch_size: int = 256, learning_rate: float = 1e-3,
               weight_decay: float = 1e-4, seed: int = 0) -> dict[str, np.ndarray]:
  """Train the linear probe's classifier and return its parameters.

  Minimises ``mean CE(x @ w + b, y) + weight_decay * ||w||^2 / 2`` with Adam on
  shuffled minibatches (see ``linear_probe``, which is this plus evaluation).

  Args:
    train_x: ``[N, F]`` float features, ideally standardised (``standardize``).
    train_y: ``[N]`` integer labels in ``[0, num_classes)``.
    num_classes: number of classes C >= 1.
    epochs, batch_size, learning_rate, weight_decay, seed: as in ``linear_probe``.

  Returns:
    ``{"w": float32 [F, C], "b": float32 [C]}`` as NumPy arrays.

  Raises:
    ValueError: on bad shapes, dtypes, label ranges or hyper-parameters.
  """
  fn = "fit_linear"
  if int(num_classes) != num_classes or num_classes < 1:
    raise ValueError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  _check_hparams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                 weight_decay=weight_decay, fn=fn)
  x = _features(train_x, name="train_x", fn=fn)
  y = _labels(train_y, name="train_y", n=x.shape[0], num_classes=int(num_classes), fn=fn)
  params = _fit(x, y, num_classes=int(num_classes), epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, weight_decay=weight_decay, seed=seed)
  return {k: np.asarray(v) for k, v in params.items()}


def linear_probe(train_x, train_y, test_x, test_y, *, num_classes: int, epochs: int = 10,
                 batch_size: int = 256, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-4, seed: int = 0) -> dict:
  """Linear-probe accuracy: multinomial logistic regression on frozen features.

  Trained with optax Adam on mean cross-entropy plus the L2 penalty
  ``weight_decay * ||W||^2 / 2`` (the bias is not penalised), from zero weights, over
  ``epochs`` passes of shuffled full minibatches (each epoch is one jitted
  ``lax.scan``; the ``N mod batch_size`` leftover examples of each epoch's shuffle are
  skipped). Features should already be standardised by the caller (``standardize``),
  since Adam with a single learning rate assumes features on comparable scales.
  Deterministic given ``seed``, which only drives the shuffling.

  Args:
    train_x: ``[N_train, F]`` float features.
    train_y: ``[N_train]`` integer labels in ``[0, num_classes)``.
    test_x: ``[N_test, F]`` float features.
    test_y: ``[N_test]`` integer labels in ``[0, num_classes)``.
    num_classes: number of classes C >= 1.
    epochs: passes over the train set, >= 1.
    batch_size: minibatch size, >= 1; clipped to N_train.
    learning_rate: Adam step size, > 0.
    weight_decay: L2 coefficient on W, >= 0.
    seed: PRNG seed for the per-epoch permutations.

  Returns:
    ``{"top1": test accuracy, "train_top1": train accuracy, "final_loss": the
    train objective (mean CE + L2 penalty) over the whole train set at the final
    weights}``, all Python floats.

  Raises:
    ValueError: on empty or mismatched arrays, non-integer or out-of-range labels,
      non-finite features or bad hyper-parameters.
  """
  fn = "linear_probe"
  train_x, train_y, test_x, test_y = _check_pair(
      train_x, train_y, test_x, test_y, num_classes=num_classes, fn=fn)
  _check_hparams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                 weight_decay=weight_decay, fn=fn)
  params = _fit(train_x, train_y, num_classes=int(num_classes), epochs=epochs,
                batch_size=batch_size, learning_rate=learning_rate,
                weight_decay=weight_decay, seed=seed)
  wd = jnp.float32(weight_decay)
  final_loss, train_top1 = _evaluate(params, jnp.asarray(train_x), jnp.asarray(train_y), wd)
  _, top1 = _evaluate(params, jnp.asarray(test_x), jnp.asarray(test_y), wd)
  return {"top1": float(top1), "train_top1": float(train_top1), "final_loss": float(final_loss)}


# ----------------------------------------------------------------------------------
# Weighted kNN (InstDisc, Wu et al. 2018).


def _l2_normalize(x):
  # The floor keeps an all-zero row at zero (similarity 0 to everything) instead of NaN.
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


@functools.partial(jax.jit, static_argnames=("num_classes", "k", "chunk_size"))
def _knn_predict(train_x, train_y, test_x, temperature, *, num_classes, k, chunk_size):
  """Predicted classes ``[N_test]`` int32; ``N_test`` must be a multiple of chunk_size."""
  train_n = _l2_normalize(train_x)  # [N_train, F]
  chunks = test_x.reshape(-1, chunk_size, test_x.shape[1])  # [num_chunks, chunk, F]

  def predict_chunk(chunk):
    # Only [chunk, N_train] similarities exist at a time: lax.map runs chunks in sequence.
    sims = _l2_normalize(chunk) @ train_n.T  # [chunk, N_train]
    top_sims, top_idx = jax.lax.top_k(sims, k)  # [chunk, k] each
    # exp(s / T) overflows float32 once s / T > ~88 (e.g. T = 0.01). Subtracting each
    # row's best similarity rescales that row's votes by a positive constant, which
    # leaves the argmax unchanged. Take it with max(), not top_sims[:, :1]: on XLA:CPU
    # a slice of the top_k output turns top_k back into a full sort (~20x slower).
    best = jnp.max(top_sims, axis=-1, keepdims=True)
    weights = jnp.exp((top_sims - best) / temperature)
    rows = jnp.arange(chunk_size)[:, None]
    # Scatter-add rather than one_hot: [chunk, k, C] would be ~800 MB at k=200, C=1000.
    votes = jnp.zeros((chunk_size, num_classes), jnp.float32)
    votes = votes.at[rows, train_y[top_idx]].add(weights)
    return jnp.argmax(votes, axis=-1).astype(jnp.int32)

  return jax.lax.map(predict_chunk, chunks).reshape(-1)


def _check_knn_hparams(*, num_classes, k, temperature, chunk_size, fn):
  if int(num_classes) != num_classes or num_classes < 1:
    raise ValueError(f"{fn}: num_classes must be a positive integer, got {num_classes}.")
  if int(k) != k or k < 1:
    raise ValueError(f"{fn}: k must be a positive integer, got {k}.")
  if not temperature > 0:
    raise ValueError(f"{fn}: temperature must be > 0, got {temperature}.")
  if int(chunk_size) != chunk_size or chunk_size < 1:
    raise ValueError(f"{fn}: chunk_size must be a positive integer, got {chunk_size}.")


def _knn(train_x, train_y, test_x, *, num_classes, k, temperature, chunk_size):
  """Predictions on already-validated float32 / int32 NumPy arrays."""
  num_test = test_x.shape[0]
  k = min(int(k), train_x.shape[0])
  chunk_size = min(int(chunk_size), num_test)  # a small test set needs no padding
  # Pad with zero rows to whole chunks so every chunk has one static shape; the
  # padded rows' predictions are dropped below.
  pad = -num_test % chunk_size
  test_x = np.pad(test_x, ((0, pad), (0, 0)))
  pred = _knn_predict(jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x),
                      jnp.float32(temperature), num_classes=int(num_classes), k=k,
                      chunk_size=chunk_size)
  return np.asarray(pred)[:num_test]


def knn_predict(train_x, train_y, test_x, *, num_classes: int, k: int = 200,
                temperature: float = 0.1, chunk_size: int = 1024) -> np.ndarray:
  """Weighted-kNN class predictions (see ``knn_top1``), int32 ``[N_test]``.

  Ties in the vote go to the lowest class id; which train neighbours are kept when
  similarities tie at the k-th place is left to ``lax.top_k``.
  """
  fn = "knn_predict"
  _check_knn_hparams(num_classes=num_classes, k=k, temperature=temperature,
                     chunk_size=chunk_size, fn=fn)
  train_x = _features(train_x, name="train_x", fn=fn)
  test_x = _features(test_x, name="test_x", fn=fn)
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(
        f"{fn}: train_x has {train_x.shape[1]} features but test_x has {test_x.shape[1]}.")
  train_y = _labels(train_y, name="train_y", n=train_x.shape[0],
                    num_classes=int(num_classes), fn=fn)
  return _knn(train_x, train_y, test_x, num_classes=num_classes, k=k,
              temperature=temperature, chunk_size=chunk_size)


def knn_top1(train_x, train_y, test_x, test_y, *, num_classes: int, k: int = 200,
             temperature: float = 0.1, chunk_size: int = 1024) -> float:
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
  fn = "knn_top1"
  _check_knn_hparams(num_classes=num_classes, k=k, temperature=temperature,
                     chunk_size=chunk_size, fn=fn)
  train_x, train_y, test_x, test_y = _check_pair(
      train_x, train_y, test_x, test_y, num_classes=num_classes, fn=fn)
  pred = _knn(train_x, train_y, test_x, num_classes=num_classes, k=k,
              temperature=temperature, chunk_size=chunk_size)
  return float(np.mean(pred == test_y))
