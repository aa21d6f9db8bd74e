"""The SSL losses of BYOL, SimSiam, MoCo v3, Barlow Twins, VICReg and DINO against independent
float64 NumPy references written from the papers' formulas: values (float32), gradients (float64
under x64, against central differences of the references), stop-gradients, invariances, known
values, and equality of a batch sharded over 8 devices with the unsharded one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jssl import losses, parallel
from jssl.errors import ConfigError

# Compiled once per shape here: run op by op, each loss compiled dozens of tiny programs per
# shape and dtype, and the file took minutes. Hyperparameters are static, so their checks still
# run (at trace time) and the error tests below still see them.
byol = jax.jit(losses.byol)
simsiam = jax.jit(losses.simsiam)
moco_v3 = jax.jit(losses.moco_v3, static_argnames="temperature")
barlow_twins = jax.jit(losses.barlow_twins, static_argnames="lambd")
vicreg = jax.jit(losses.vicreg, static_argnames=("sim_weight", "var_weight", "cov_weight"))
vicreg_terms = jax.jit(losses.vicreg_terms)
dino = jax.jit(losses.dino, static_argnames=("student_temperature", "teacher_temperature"))
dino_center_update = jax.jit(losses.dino_center_update, static_argnums=2)
dino_teacher_entropy = jax.jit(losses.dino_teacher_entropy, static_argnums=2)
embedding_std = jax.jit(losses.embedding_std)

# ---------------------------------------------------------------------------------------------
# NumPy references, float64, one example (or view pair, or matrix entry) at a time.


def np_cosine(a, b):
  return np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))


def np_softmax(x):
  e = np.exp(x - np.max(x, axis=-1, keepdims=True))
  return e / np.sum(e, axis=-1, keepdims=True)


def ref_byol(p, z):
  return np.mean([2 - 2 * np_cosine(p[i], z[i]) for i in range(len(p))])


def ref_simsiam(p, z):
  return np.mean([-np_cosine(p[i], z[i]) for i in range(len(p))])


def ref_moco_v3(q, k, temperature):
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  k = k / np.linalg.norm(k, axis=1, keepdims=True)
  losses = []
  for i in range(len(q)):
    logits = np.array([q[i] @ k[j] / temperature for j in range(len(k))])
    losses.append(np.log(np.sum(np.exp(logits))) - logits[i])  # cross-entropy with label i
  return 2 * temperature * np.mean(losses)


def ref_barlow_twins(z_a, z_b, lambd):
  n, d = z_a.shape

  def batch_norm(z):  # BatchNorm1d(affine=False), training mode: biased variance, eps 1e-5
    return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)

  c = batch_norm(z_a).T @ batch_norm(z_b) / n
  total = 0.0
  for i in range(d):
    for j in range(d):
      total += (1 - c[i, i]) ** 2 if i == j else lambd * c[i, j] ** 2
  return total


def ref_vicreg_terms(z_a, z_b):
  d = z_a.shape[1]

  def variance_covariance(z):
    std = np.sqrt(np.var(z, axis=0, ddof=1) + 1e-4)
    cov = np.cov(z, rowvar=False)  # centred, divided by N - 1
    return np.mean(np.maximum(0.0, 1 - std)), np.sum(cov[~np.eye(d, dtype=bool)] ** 2) / d

  var_a, cov_a = variance_covariance(z_a)
  var_b, cov_b = variance_covariance(z_b)
  return {"similarity": np.mean((z_a - z_b) ** 2), "variance": (var_a + var_b) / 2, "covariance": cov_a + cov_b}


def ref_vicreg(z_a, z_b, sim_weight=25.0, var_weight=25.0, cov_weight=1.0):
  t = ref_vicreg_terms(z_a, z_b)
  return sim_weight * t["similarity"] + var_weight * t["variance"] + cov_weight * t["covariance"]


def ref_dino(student, teacher, center, student_temperature, teacher_temperature):
  """DINOLoss.forward's double loop: every teacher view against every other student view."""
  total, n_terms = 0.0, 0
  for iq in range(len(teacher)):
    q = np_softmax((teacher[iq] - center.reshape(-1)) / teacher_temperature)
    for v in range(len(student)):
      if v == iq:
        continue
      log_p = np.log(np_softmax(student[v] / student_temperature))
      total += np.mean(-np.sum(q * log_p, axis=-1))
      n_terms += 1
  return total / n_terms


def numerical_grad(f, x, h=1e-6):
  """Central differences of scalar ``f`` at float64 ``x``, one entry at a time."""
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[index] += h
    down[index] -= h
    grad[index] = (f(up) - f(down)) / (2 * h)
  return grad


# ---------------------------------------------------------------------------------------------
# One table for the pairwise losses: (jitted loss, NumPy reference, hyperparameters, the
# arguments that carry gradient). Most tests use the shapes SHAPE and DINO_SHAPE, so that the
# jitted losses compile once for them.

DINO_T = {"student_temperature": 0.1, "teacher_temperature": 0.04}
SHAPE = (8, 6)  # [N, D]
DINO_SHAPE = (5, 2, 8, 16)  # V_s (2 global + 3 local), V_t, N, K

PAIR_LOSSES = {
  "byol": (byol, ref_byol, {}, (0,)),
  "simsiam": (simsiam, ref_simsiam, {}, (0,)),
  "moco_v3": (moco_v3, ref_moco_v3, {"temperature": 0.2}, (0,)),
  "barlow_twins": (barlow_twins, ref_barlow_twins, {"lambd": 0.0051}, (0, 1)),
  "vicreg": (vicreg, ref_vicreg, {}, (0, 1)),
}


def pair_inputs(seed, batch=SHAPE[0], dim=SHAPE[1], scale=1.0):
  """float64 ``z_a, z_b``, correlated, scaled and shifted so that the normalisations have work to do."""
  rng = np.random.default_rng(seed)
  z_a = scale * rng.normal(size=(batch, dim)) + 0.3
  z_b = 0.5 * z_a + scale * rng.normal(size=(batch, dim))
  return z_a, z_b


def dino_inputs(seed, student_views=DINO_SHAPE[0], teacher_views=DINO_SHAPE[1], batch=DINO_SHAPE[2], k=DINO_SHAPE[3]):
  """float64 student logits, teacher logits and center (teacher logits / 0.04 spread over ~5)."""
  rng = np.random.default_rng(seed)
  return (
    2.0 * rng.normal(size=(student_views, batch, k)),
    0.2 * rng.normal(size=(teacher_views, batch, k)),
    0.1 * rng.normal(size=(k,)),
  )


def f32(*arrays):
  # Cast by NumPy: jnp.asarray(x, jnp.float32) of float64 compiles a conversion per shape.
  return tuple(np.asarray(x, np.float32) for x in arrays)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


# ---------------------------------------------------------------------------------------------
# Values against the references, in float32.


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
@pytest.mark.parametrize("batch,dim,scale", [(2, 3, 1.0), (*SHAPE, 3.0), (33, 40, 0.2)])
def test_pair_loss_matches_float64_reference(name, batch, dim, scale):
  loss, reference, kwargs, _ = PAIR_LOSSES[name]
  z_a, z_b = pair_inputs(batch * dim, batch, dim, scale)
  got = loss(*f32(z_a, z_b), **kwargs)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(float(got), reference(z_a, z_b, **kwargs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch,dim", [(2, 3), SHAPE, (33, 40)])
def test_vicreg_terms_match_reference(batch, dim):
  z_a, z_b = pair_inputs(dim, batch, dim, scale=0.7)
  got = vicreg_terms(*f32(z_a, z_b))
  want = ref_vicreg_terms(z_a, z_b)
  assert sorted(got) == ["covariance", "similarity", "variance"]
  for key in want:
    np.testing.assert_allclose(float(got[key]), want[key], rtol=1e-5, atol=1e-7, err_msg=key)
  # Every term is weighted by its own weight.
  combined = vicreg(*f32(z_a, z_b), sim_weight=2.0, var_weight=3.0, cov_weight=5.0)
  np.testing.assert_allclose(float(combined), ref_vicreg(z_a, z_b, 2.0, 3.0, 5.0), rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 2, 4, 5), DINO_SHAPE, (4, 1, 3, 32), (12, 2, 6, 65)])
def test_dino_matches_float64_reference(shape):
  student, teacher, center = dino_inputs(sum(shape), *shape)
  got = dino(*f32(student, teacher, center), **DINO_T)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(float(got), ref_dino(student, teacher, center, **DINO_T), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients in float64 against central differences of the references; the target / key /
# teacher side gets exactly zero.


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pair_loss_gradients_match_finite_differences_and_targets_get_none(name, x64):
  loss, reference, kwargs, argnums = PAIR_LOSSES[name]
  inputs = pair_inputs(7, 6, 5)
  value, grads = jax.jit(jax.value_and_grad(lambda a, b: loss(a, b, **kwargs), argnums=(0, 1)))(*inputs)
  assert value.dtype == jnp.float64  # float64 inputs under x64 are computed in float64
  np.testing.assert_allclose(float(value), reference(*inputs, **kwargs), rtol=1e-10)
  for argnum, grad in enumerate(grads):
    if argnum not in argnums:  # the target network's projections / the momentum encoder's keys
      np.testing.assert_array_equal(grad, 0.0)
      continue

    def f(x, argnum=argnum):
      args = list(inputs)
      args[argnum] = x
      return reference(*args, **kwargs)

    want = numerical_grad(f, inputs[argnum])
    assert np.abs(want).max() > 1e-3  # a gradient worth comparing
    np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6, atol=1e-8)


def test_dino_gradient_matches_finite_differences_and_teacher_gets_none(x64):
  student, teacher, center = dino_inputs(3, 5, 2, 3, 4)
  value, grads = jax.jit(jax.value_and_grad(lambda s, t, c: dino(s, t, c, **DINO_T), argnums=(0, 1, 2)))(
    student, teacher, center
  )
  assert value.dtype == jnp.float64
  want = numerical_grad(lambda s: ref_dino(s, teacher, center, **DINO_T), student)
  np.testing.assert_allclose(np.asarray(grads[0]), want, rtol=1e-6, atol=1e-8)
  np.testing.assert_array_equal(grads[1], 0.0)
  np.testing.assert_array_equal(grads[2], 0.0)


def test_dino_monitors_pass_no_gradient():
  _, teacher, center = f32(*dino_inputs(0))
  for monitor in (lambda t, c: dino_center_update(c, t, 0.9).sum(), lambda t, c: dino_teacher_entropy(t, c, 0.04)):
    for grad in jax.jit(jax.grad(monitor, argnums=(0, 1)))(teacher, center):
      np.testing.assert_array_equal(grad, 0.0)


# ---------------------------------------------------------------------------------------------
# Invariances and identities.


def test_cosine_losses_are_scale_invariant_and_byol_is_two_plus_twice_simsiam():
  p, z = pair_inputs(1)
  row_scale = np.random.default_rng(1).uniform(0.01, 50.0, size=(SHAPE[0], 1))
  for name in ("byol", "simsiam", "moco_v3"):
    loss, _, kwargs, _ = PAIR_LOSSES[name]
    np.testing.assert_allclose(
      loss(*f32(row_scale * p, z / row_scale), **kwargs), loss(*f32(p, z), **kwargs), rtol=1e-5, atol=1e-6
    )
  np.testing.assert_allclose(byol(*f32(p, z)), 2 + 2 * simsiam(*f32(p, z)), rtol=1e-6)


def test_barlow_twins_invariant_to_per_dimension_affine_maps_and_symmetric():
  z_a, z_b = pair_inputs(2)
  rng = np.random.default_rng(2)
  scale_a, scale_b = rng.uniform(0.5, 2.0, size=(2, SHAPE[1]))
  shift_a, shift_b = rng.normal(size=(2, SHAPE[1])) * 10
  base = barlow_twins(*f32(z_a, z_b), lambd=0.0051)
  # Exact but for BatchNorm's eps (1e-5 next to variances ~1, rescaled) and float32 shifts.
  moved = barlow_twins(*f32(scale_a * z_a + shift_a, scale_b * z_b + shift_b), lambd=0.0051)
  np.testing.assert_allclose(moved, base, rtol=1e-4)
  # Swapping the views transposes C: the same diagonal and off-diagonal entries.
  np.testing.assert_allclose(barlow_twins(*f32(z_b, z_a), lambd=0.0051), base, rtol=1e-6)


def test_vicreg_symmetric_and_invariant_to_a_common_shift():
  z_a, z_b = pair_inputs(3)
  shift = np.random.default_rng(3).normal(size=(SHAPE[1],))
  base = vicreg(*f32(z_a, z_b))
  np.testing.assert_allclose(vicreg(*f32(z_b, z_a)), base, rtol=1e-6)
  np.testing.assert_allclose(vicreg(*f32(z_a + shift, z_b + shift)), base, rtol=1e-5)


def test_dino_invariant_to_per_row_logit_offsets():
  student, teacher, center = dino_inputs(4)
  rng = np.random.default_rng(4)
  base = dino(*f32(student, teacher, center), **DINO_T)
  student_offset = 5 * rng.normal(size=(DINO_SHAPE[0], DINO_SHAPE[2], 1))
  teacher_offset = rng.normal(size=(DINO_SHAPE[1], DINO_SHAPE[2], 1))
  np.testing.assert_allclose(dino(*f32(student + student_offset, teacher, center), **DINO_T), base, rtol=1e-5)
  np.testing.assert_allclose(dino(*f32(student, teacher + teacher_offset, center + 0.3), **DINO_T), base, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Known values.


def test_identical_views_give_byol_zero_and_simsiam_minus_one():
  z, _ = pair_inputs(5)
  np.testing.assert_allclose(byol(*f32(z, z)), 0.0, atol=1e-6)
  np.testing.assert_allclose(simsiam(*f32(z, 3 * z)), -1.0, rtol=1e-6)
  np.testing.assert_allclose(byol(*f32(z, -z)), 4.0, rtol=1e-6)


def test_moco_v3_known_value_for_orthonormal_rows():
  # Positives at cosine 1, the N - 1 negatives at 0: 2 tau * -log(e^(1/tau) / (e^(1/tau) + N - 1)).
  n, t = SHAPE[1], 0.2
  expected = 2 * t * -np.log(np.exp(1 / t) / (np.exp(1 / t) + n - 1))
  # atol: the cross-entropy, 0.03 here, is a float32 difference of log-sum-exp and logit ~5.
  np.testing.assert_allclose(moco_v3(*f32(np.eye(n), 2 * np.eye(n)), temperature=t), expected, rtol=1e-6, atol=1e-7)


def test_barlow_twins_near_zero_for_identical_standardised_decorrelated_views():
  n, d = 64, 8
  centred = np.random.default_rng(6).normal(size=(n, d))
  centred -= centred.mean(axis=0)
  z = np.sqrt(n) * np.linalg.qr(centred)[0]  # columns: mean 0, biased variance 1, uncorrelated
  np.testing.assert_allclose(z.T @ z / n, np.eye(d), atol=1e-12)
  loss = barlow_twins(*f32(z, z), lambd=0.0051)
  assert 0 <= float(loss) < 1e-6  # C = I / (1 + 1e-5): D * 1e-10 from BatchNorm's eps
  # ... and far from it when the views are unrelated.
  other = np.random.default_rng(7).normal(size=(n, d))
  assert barlow_twins(*f32(z, other), lambd=0.0051) > 0.5 * d


def test_vicreg_of_a_collapsed_batch():
  z = np.tile(np.random.default_rng(8).normal(size=(1, SHAPE[1])), (SHAPE[0], 1))
  terms = vicreg_terms(*f32(z, z))
  np.testing.assert_allclose(terms["similarity"], 0.0, atol=0)
  # Every std is sqrt(0 + 1e-4) = 0.01: the hinge is 1 - 0.01 in both views.
  np.testing.assert_allclose(terms["variance"], 1 - np.sqrt(1e-4), rtol=1e-6)
  np.testing.assert_allclose(terms["covariance"], 0.0, atol=1e-10)
  grads = jax.jit(jax.grad(vicreg, argnums=(0, 1)))(*f32(z, z))
  assert all(np.all(np.isfinite(g)) for g in grads)  # the 1e-4 keeps the std's gradient finite
  # Spread-out dimensions (std ~3 > 1) leave the hinge at exactly 0.
  spread = 3.0 * np.random.default_rng(9).normal(size=SHAPE)
  np.testing.assert_allclose(vicreg_terms(*f32(spread, spread + 1.0))["variance"], 0.0, atol=0)


def test_dino_averages_over_exactly_the_pairs_of_different_views():
  # 2 global + 3 local student views, 2 teacher views: 2 * 5 - 2 = 8 pairs, listed by hand.
  student, teacher, center = dino_inputs(10)
  pairs = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 2), (1, 3), (1, 4)]
  t_s, t_t = DINO_T["student_temperature"], DINO_T["teacher_temperature"]
  terms = [
    np.mean(-np.sum(np_softmax((teacher[iq] - center) / t_t) * np.log(np_softmax(student[v] / t_s)), axis=-1))
    for iq, v in pairs
  ]
  got = dino(*f32(student, teacher, center), **DINO_T)
  np.testing.assert_allclose(got, np.sum(terms) / 8, rtol=1e-5)
  # Uniform student predictions cost log K against any target, so the mean is log K whatever
  # the targets: a wrong pair count (or a same-view pair divided by the right count) breaks it.
  uniform = dino(*f32(np.zeros_like(student), teacher, center), **DINO_T)
  np.testing.assert_allclose(uniform, np.log(DINO_SHAPE[3]), rtol=1e-6)


@pytest.mark.parametrize("center_shape", ["[K]", "[1, K]"])
def test_dino_center_update_matches_numpy(center_shape):
  student, teacher, center = dino_inputs(11)
  k = DINO_SHAPE[3]
  center = center.reshape(-1 if center_shape == "[K]" else (1, k))
  rows = teacher.reshape(-1, k)
  want = center * 0.9 + np.array([np.mean(rows[:, j]) for j in range(k)]).reshape(center.shape) * 0.1
  got = dino_center_update(*f32(center, teacher), 0.9)
  assert got.shape == center.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(dino_center_update(*f32(center, teacher), 1.0), center, rtol=1e-6)
  # dino subtracts the center from the teacher logits.
  shifted = dino(*f32(student, teacher - want.reshape(-1), np.zeros(k)), **DINO_T)
  np.testing.assert_allclose(dino(*f32(student, teacher), got.reshape(-1), **DINO_T), shifted, rtol=1e-5)


def test_dino_teacher_entropy_matches_numpy_and_spans_zero_to_log_k():
  _, teacher, center = dino_inputs(12)
  k = DINO_SHAPE[3]
  q = np_softmax((teacher - center) / 0.04)
  want = np.mean([-np.sum(row * np.log(row)) for row in q.reshape(-1, k)])
  np.testing.assert_allclose(dino_teacher_entropy(*f32(teacher, center), 0.04), want, rtol=1e-5)
  assert 0.1 < want < np.log(k) - 0.1  # neither extreme: the comparison means something
  uniform = dino_teacher_entropy(*f32(np.ones_like(teacher), np.ones(k)), 0.04)
  np.testing.assert_allclose(uniform, np.log(k), rtol=1e-5)  # float32 sums of k terms
  one_hot = 100.0 * np.eye(k)[np.arange(teacher[..., 0].size) % k].reshape(teacher.shape)
  np.testing.assert_allclose(dino_teacher_entropy(*f32(one_hot, np.zeros(k)), 0.04), 0.0, atol=1e-6)


def test_embedding_std_matches_numpy_and_detects_collapse():
  z = np.random.default_rng(13).normal(size=(4096, 32))
  for shift in (0.0, 0.2):
    normalised = (z + shift) / np.linalg.norm(z + shift, axis=1, keepdims=True)
    want = np.mean([np.sqrt(np.mean((normalised[:, j] - normalised[:, j].mean()) ** 2)) for j in range(32)])
    np.testing.assert_allclose(embedding_std(*f32(z + shift)), want, rtol=1e-5)
  # Isotropic Gaussian outputs: 1 / sqrt(D), as the SimSiam paper says.
  np.testing.assert_allclose(embedding_std(*f32(z)), 1 / np.sqrt(32), rtol=0.02)
  collapsed = f32(np.tile(z[:1], (4096, 1)))
  np.testing.assert_allclose(embedding_std(*collapsed), 0.0, atol=1e-6)
  assert np.all(jax.jit(jax.grad(embedding_std))(*collapsed) == 0)  # a monitor: no (NaN) gradient at collapse


# ---------------------------------------------------------------------------------------------
# Sharded batch, dtypes, errors.


def test_batch_sharded_over_devices_gives_the_reference_values_and_gradients():
  """The losses that couple rows (not byol and simsiam, means of per-row terms), compiled for 16
  rows split over 8 devices: the negatives / statistics are global, and so are the gradients."""
  mesh = parallel.make_mesh(jax.devices())
  rows = parallel.batch_sharding(mesh)
  z_a, z_b = pair_inputs(14, 16, 4)
  for name in ("moco_v3", "barlow_twins", "vicreg"):
    loss, reference, kwargs, argnums = PAIR_LOSSES[name]
    fn = jax.jit(jax.value_and_grad(lambda a, b, loss=loss, kwargs=kwargs: loss(a, b, **kwargs), argnums=argnums))
    value, grads = fn(*(jax.device_put(x, rows) for x in f32(z_a, z_b)))
    np.testing.assert_allclose(value, reference(z_a, z_b, **kwargs), rtol=1e-5, err_msg=name)
    for argnum, grad in zip(argnums, grads):
      others = [z_a, z_b]

      def f(x, argnum=argnum, others=others, reference=reference, kwargs=kwargs):
        others[argnum] = x
        return reference(*others, **kwargs)

      want = numerical_grad(f, [z_a, z_b][argnum])
      np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6, err_msg=name)

  student, teacher, center = dino_inputs(15, 3, 2, 16, 4)
  views = NamedSharding(mesh, P(None, parallel.BATCH_AXES))

  @jax.jit
  def dino_step(s, t, c):
    value, grad = jax.value_and_grad(lambda s: dino(s, t, c, **DINO_T))(s)
    return value, grad, dino_center_update(c, t, 0.9)

  s, t, c = f32(student, teacher, center)
  value, grad, new_center = dino_step(jax.device_put(s, views), jax.device_put(t, views), c)
  np.testing.assert_allclose(value, ref_dino(student, teacher, center, **DINO_T), rtol=1e-5)
  want = numerical_grad(lambda x: ref_dino(x, teacher, center, **DINO_T), student)
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(new_center, 0.9 * center + 0.1 * teacher.mean(axis=(0, 1)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_low_precision_inputs_are_computed_in_float32(name, x64):
  loss, reference, kwargs, _ = PAIR_LOSSES[name]
  z_a, z_b = pair_inputs(15)
  low_a, low_b = np.asarray(z_a, jnp.bfloat16), np.asarray(z_b, jnp.bfloat16)
  low = loss(low_a, low_b, **kwargs)
  assert low.dtype == jnp.float32  # bfloat16 promoted to float32, not to float64 even under x64
  # Only the inputs' rounding to bfloat16 (~3 digits) separates it from the float64 loss.
  np.testing.assert_allclose(
    float(low), reference(low_a.astype(np.float64), low_b.astype(np.float64), **kwargs), rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pair_losses_reject_mismatched_or_wrong_rank_inputs(name):
  loss, _, kwargs, _ = PAIR_LOSSES[name]
  with pytest.raises(ValueError, match="same shape"):
    loss(np.zeros((4, 3)), np.zeros((4, 5)), **kwargs)
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    loss(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), **kwargs)


def test_bad_hyperparameters_and_view_counts_are_rejected():
  z = np.ones((4, 3))
  with pytest.raises(ConfigError, match="temperature must be > 0"):
    moco_v3(z, z, temperature=0.0)
  with pytest.raises(ConfigError, match="lambd must be >= 0"):
    barlow_twins(z, z, lambd=-1.0)
  with pytest.raises(ValueError, match="at least 2 rows"):
    vicreg(z[:1], z[:1])
  logits = np.zeros((2, 4, 5))
  with pytest.raises(ConfigError, match="teacher_temperature must be > 0"):
    dino(logits, logits, np.zeros(5), student_temperature=0.1, teacher_temperature=-0.04)
  with pytest.raises(ValueError, match="V_t <= V_s"):
    dino(logits[:1], logits, np.zeros(5), **DINO_T)
  with pytest.raises(ValueError, match="V_t <= V_s"):
    dino(logits[:1], logits[:1], np.zeros(5), **DINO_T)  # one view: no pair of different views
  with pytest.raises(ValueError, match="center must be"):
    dino(logits, logits, np.zeros(4), **DINO_T)
  with pytest.raises(ConfigError, match="momentum"):
    dino_center_update(np.zeros(5), logits, 1.5)
