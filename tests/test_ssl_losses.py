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

from jssl import parallel
from jssl.errors import ConfigError
from jssl.losses import (
  barlow_twins,
  byol,
  dino,
  dino_center_update,
  dino_teacher_entropy,
  embedding_std,
  moco_v3,
  simsiam,
  vicreg,
  vicreg_terms,
)

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
# One table for the pairwise losses: (jax loss, NumPy reference, keyword arguments, argnums
# that carry gradient).

DINO_T = {"student_temperature": 0.1, "teacher_temperature": 0.04}

PAIR_LOSSES = {
  "byol": (byol, ref_byol, {}, (0,)),
  "simsiam": (simsiam, ref_simsiam, {}, (0,)),
  "moco_v3": (moco_v3, ref_moco_v3, {"temperature": 0.2}, (0,)),
  "barlow_twins": (barlow_twins, ref_barlow_twins, {"lambd": 0.0051}, (0, 1)),
  "vicreg": (vicreg, ref_vicreg, {}, (0, 1)),
}


def pair_inputs(rng, batch, dim, scale=1.0):
  # Scaled and shifted so that the standardisation and normalisation inside have work to do.
  z_a = scale * rng.normal(size=(batch, dim)) + 0.3
  z_b = 0.5 * z_a + scale * rng.normal(size=(batch, dim))
  return z_a, z_b


def dino_inputs(rng, student_views, teacher_views, batch, k):
  student = 2.0 * rng.normal(size=(student_views, batch, k))
  teacher = 0.2 * rng.normal(size=(teacher_views, batch, k))
  center = 0.1 * rng.normal(size=(k,))
  return student, teacher, center


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
@pytest.mark.parametrize("batch,dim,scale", [(2, 3, 1.0), (8, 16, 3.0), (33, 7, 0.2), (64, 96, 1.0)])
def test_pair_loss_matches_float64_reference(name, batch, dim, scale):
  loss, reference, kwargs, _ = PAIR_LOSSES[name]
  z_a, z_b = pair_inputs(np.random.default_rng(batch * dim), batch, dim, scale)
  got = loss(jnp.asarray(z_a, jnp.float32), jnp.asarray(z_b, jnp.float32), **kwargs)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(float(got), reference(z_a, z_b, **kwargs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch,dim", [(2, 3), (16, 8), (40, 24)])
def test_vicreg_terms_match_reference(batch, dim):
  z_a, z_b = pair_inputs(np.random.default_rng(dim), batch, dim, scale=0.7)
  got = vicreg_terms(jnp.asarray(z_a, jnp.float32), jnp.asarray(z_b, jnp.float32))
  want = ref_vicreg_terms(z_a, z_b)
  assert sorted(got) == ["covariance", "similarity", "variance"]
  for key in want:
    np.testing.assert_allclose(float(got[key]), want[key], rtol=1e-5, atol=1e-7, err_msg=key)
  # The weights multiply the terms: the combination with other weights follows.
  combined = vicreg(
    jnp.asarray(z_a, jnp.float32), jnp.asarray(z_b, jnp.float32), sim_weight=2, var_weight=3, cov_weight=5
  )
  np.testing.assert_allclose(float(combined), ref_vicreg(z_a, z_b, 2, 3, 5), rtol=1e-5)


@pytest.mark.parametrize("views,teacher_views,batch,k", [(2, 2, 4, 5), (5, 2, 8, 16), (4, 1, 3, 32), (12, 2, 6, 65)])
def test_dino_matches_float64_reference(views, teacher_views, batch, k):
  student, teacher, center = dino_inputs(np.random.default_rng(views * k), views, teacher_views, batch, k)
  got = dino(*(jnp.asarray(x, jnp.float32) for x in (student, teacher, center)), **DINO_T)
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(float(got), ref_dino(student, teacher, center, **DINO_T), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Gradients in float64 against central differences of the references.


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pair_loss_gradient_matches_finite_differences(name, x64):
  loss, reference, kwargs, argnums = PAIR_LOSSES[name]
  z_a, z_b = pair_inputs(np.random.default_rng(7), 6, 5)
  value, grads = jax.value_and_grad(lambda a, b: loss(a, b, **kwargs), argnums=argnums)(
    jnp.asarray(z_a), jnp.asarray(z_b)
  )
  assert value.dtype == jnp.float64  # float64 inputs under x64 are computed in float64
  np.testing.assert_allclose(float(value), reference(z_a, z_b, **kwargs), rtol=1e-10)
  inputs = [z_a, z_b]
  for argnum, grad in zip(argnums, grads):

    def f(x, argnum=argnum):
      args = list(inputs)
      args[argnum] = x
      return reference(*args, **kwargs)

    np.testing.assert_allclose(np.asarray(grad), numerical_grad(f, inputs[argnum]), rtol=1e-6, atol=1e-8)


def test_dino_gradient_matches_finite_differences(x64):
  student, teacher, center = dino_inputs(np.random.default_rng(3), 5, 2, 3, 4)
  value, grad = jax.value_and_grad(lambda s: dino(s, jnp.asarray(teacher), jnp.asarray(center), **DINO_T))(
    jnp.asarray(student)
  )
  assert value.dtype == jnp.float64
  want = numerical_grad(lambda s: ref_dino(s, teacher, center, **DINO_T), student)
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Stop-gradients: the target / key / teacher side gets exactly zero.


@pytest.mark.parametrize("name", ["byol", "simsiam", "moco_v3"])
def test_target_side_gets_no_gradient(name):
  loss, _, kwargs, _ = PAIR_LOSSES[name]
  z_a, z_b = (jnp.asarray(x, jnp.float32) for x in pair_inputs(np.random.default_rng(0), 8, 6))
  grad_online, grad_target = jax.grad(lambda a, b: loss(a, b, **kwargs), argnums=(0, 1))(z_a, z_b)
  np.testing.assert_array_equal(grad_target, 0.0)
  assert np.all(np.isfinite(grad_online)) and np.abs(grad_online).max() > 1e-4


def test_dino_teacher_and_center_get_no_gradient():
  student, teacher, center = (jnp.asarray(x, jnp.float32) for x in dino_inputs(np.random.default_rng(0), 4, 2, 5, 8))
  grads = jax.grad(lambda s, t, c: dino(s, t, c, **DINO_T), argnums=(0, 1, 2))(student, teacher, center)
  np.testing.assert_array_equal(grads[1], 0.0)
  np.testing.assert_array_equal(grads[2], 0.0)
  assert np.abs(grads[0]).max() > 1e-4
  for monitor in (lambda t, c: dino_center_update(c, t, 0.9).sum(), lambda t, c: dino_teacher_entropy(t, c, 0.04)):
    for grad in jax.grad(monitor, argnums=(0, 1))(teacher, center):
      np.testing.assert_array_equal(grad, 0.0)


# ---------------------------------------------------------------------------------------------
# Invariances and identities.


def test_cosine_losses_are_scale_invariant_and_byol_is_two_plus_twice_simsiam():
  rng = np.random.default_rng(1)
  p, z = (jnp.asarray(x, jnp.float32) for x in pair_inputs(rng, 10, 12))
  row_scale = jnp.asarray(rng.uniform(0.01, 50.0, size=(10, 1)), jnp.float32)
  for loss, kwargs in ((byol, {}), (simsiam, {}), (moco_v3, {"temperature": 0.1})):
    base = loss(p, z, **kwargs)
    np.testing.assert_allclose(loss(row_scale * p, z / row_scale, **kwargs), base, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(byol(p, z), 2 + 2 * simsiam(p, z), rtol=1e-6)


def test_barlow_twins_invariant_to_per_dimension_affine_maps_and_symmetric():
  rng = np.random.default_rng(2)
  z_a, z_b = pair_inputs(rng, 32, 8)
  base = barlow_twins(jnp.asarray(z_a, jnp.float32), jnp.asarray(z_b, jnp.float32), lambd=0.0051)
  scale_a, scale_b = rng.uniform(0.5, 2.0, size=(2, 8))
  shift_a, shift_b = rng.normal(size=(2, 8)) * 10
  moved = barlow_twins(
    jnp.asarray(scale_a * z_a + shift_a, jnp.float32), jnp.asarray(scale_b * z_b + shift_b, jnp.float32), lambd=0.0051
  )
  # Exact but for BatchNorm's eps (1e-5 next to variances ~1, rescaled) and float32 shifts.
  np.testing.assert_allclose(moved, base, rtol=1e-4)
  swapped = barlow_twins(jnp.asarray(z_b, jnp.float32), jnp.asarray(z_a, jnp.float32), lambd=0.0051)
  np.testing.assert_allclose(swapped, base, rtol=1e-6)  # C transposes: same diagonal and off-diagonal


def test_vicreg_symmetric_and_invariant_to_a_common_shift():
  rng = np.random.default_rng(3)
  z_a, z_b = (jnp.asarray(x, jnp.float32) for x in pair_inputs(rng, 16, 6))
  shift = jnp.asarray(rng.normal(size=(6,)), jnp.float32)
  base = vicreg(z_a, z_b)
  np.testing.assert_allclose(vicreg(z_b, z_a), base, rtol=1e-6)
  np.testing.assert_allclose(vicreg(z_a + shift, z_b + shift), base, rtol=1e-5)


def test_dino_invariant_to_per_row_logit_offsets():
  rng = np.random.default_rng(4)
  student, teacher, center = (jnp.asarray(x, jnp.float32) for x in dino_inputs(rng, 5, 2, 6, 10))
  base = dino(student, teacher, center, **DINO_T)
  student_offset = jnp.asarray(rng.normal(size=(5, 6, 1)) * 5, jnp.float32)
  teacher_offset = jnp.asarray(rng.normal(size=(2, 6, 1)), jnp.float32)
  np.testing.assert_allclose(dino(student + student_offset, teacher, center, **DINO_T), base, rtol=1e-5)
  np.testing.assert_allclose(dino(student, teacher + teacher_offset, center + 0.3, **DINO_T), base, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Known values.


def test_identical_views_give_byol_zero_and_simsiam_minus_one():
  z = jnp.asarray(np.random.default_rng(5).normal(size=(8, 16)), jnp.float32)
  np.testing.assert_allclose(byol(z, z), 0.0, atol=1e-6)
  np.testing.assert_allclose(simsiam(z, 3 * z), -1.0, rtol=1e-6)
  np.testing.assert_allclose(byol(z, -z), 4.0, rtol=1e-6)


def test_moco_v3_known_value_for_orthonormal_keys():
  # Positives at cosine 1, the N - 1 negatives at 0: 2 tau * -log(e^(1/tau) / (e^(1/tau) + N - 1)).
  n, t = 6, 0.2
  expected = 2 * t * -np.log(np.exp(1 / t) / (np.exp(1 / t) + n - 1))
  np.testing.assert_allclose(moco_v3(jnp.eye(n), 2 * jnp.eye(n), temperature=t), expected, rtol=1e-6)


def test_barlow_twins_near_zero_for_identical_standardised_decorrelated_views():
  n, d = 64, 8
  centred = np.random.default_rng(6).normal(size=(n, d))
  centred -= centred.mean(axis=0)
  z = np.sqrt(n) * np.linalg.qr(centred)[0]  # columns: mean 0, biased variance 1, uncorrelated
  np.testing.assert_allclose(z.T @ z / n, np.eye(d), atol=1e-12)
  loss = barlow_twins(jnp.asarray(z, jnp.float32), jnp.asarray(z, jnp.float32), lambd=0.0051)
  assert 0 <= float(loss) < 1e-6  # C = I / (1 + 1e-5): D * 1e-10 from BatchNorm's eps
  # ... and far from it when the views are unrelated.
  other = np.random.default_rng(7).normal(size=(n, d))
  assert barlow_twins(jnp.asarray(z, jnp.float32), jnp.asarray(other, jnp.float32), lambd=0.0051) > 0.5 * d


def test_vicreg_of_a_collapsed_batch():
  z = jnp.tile(jnp.asarray(np.random.default_rng(8).normal(size=(1, 6)), jnp.float32), (10, 1))
  terms = vicreg_terms(z, z)
  np.testing.assert_allclose(terms["similarity"], 0.0, atol=0)
  # Every std is sqrt(0 + 1e-4) = 0.01: the hinge is 1 - 0.01 in both views.
  np.testing.assert_allclose(terms["variance"], 1 - np.sqrt(1e-4), rtol=1e-6)
  np.testing.assert_allclose(terms["covariance"], 0.0, atol=1e-10)
  grads = jax.grad(lambda a: vicreg(a, z))(z)
  assert np.all(np.isfinite(grads))  # the 1e-4 keeps the std's gradient finite at collapse


def test_vicreg_variance_term_zero_for_spread_out_dimensions():
  z = jnp.asarray(3.0 * np.random.default_rng(9).normal(size=(64, 5)), jnp.float32)
  np.testing.assert_allclose(vicreg_terms(z, z + 1.0)["variance"], 0.0, atol=0)


def test_dino_averages_over_exactly_the_pairs_of_different_views():
  # 2 global + 3 local student views, 2 teacher views: 2 * 5 - 2 = 8 pairs, listed by hand.
  rng = np.random.default_rng(10)
  student, teacher, center = dino_inputs(rng, 5, 2, 4, 7)
  pairs = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 2), (1, 3), (1, 4)]
  t_s, t_t = DINO_T["student_temperature"], DINO_T["teacher_temperature"]
  terms = [
    np.mean(-np.sum(np_softmax((teacher[iq] - center) / t_t) * np.log(np_softmax(student[v] / t_s)), axis=-1))
    for iq, v in pairs
  ]
  got = dino(*(jnp.asarray(x, jnp.float32) for x in (student, teacher, center)), **DINO_T)
  np.testing.assert_allclose(got, np.sum(terms) / 8, rtol=1e-5)
  # Uniform student predictions cost log K against any target, so the mean is log K whatever
  # the targets: a wrong pair count (or a same-view pair divided by the right count) breaks it.
  uniform = dino(jnp.zeros((5, 4, 7)), jnp.asarray(teacher, jnp.float32), jnp.asarray(center), **DINO_T)
  np.testing.assert_allclose(uniform, np.log(7), rtol=1e-6)


@pytest.mark.parametrize("center_shape", [(6,), (1, 6)])
def test_dino_center_update_matches_numpy(center_shape):
  rng = np.random.default_rng(11)
  center = rng.normal(size=center_shape)
  teacher = rng.normal(size=(2, 5, 6))
  rows = teacher.reshape(-1, 6)
  want = center * 0.9 + np.array([np.mean(rows[:, k]) for k in range(6)]).reshape(center_shape) * 0.1
  got = dino_center_update(jnp.asarray(center, jnp.float32), jnp.asarray(teacher, jnp.float32), 0.9)
  assert got.shape == center_shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(dino_center_update(jnp.asarray(center), jnp.asarray(teacher), 1.0), center, rtol=1e-6)
  # The center a dino call subtracts has the same effect as shifting the teacher logits.
  student = jnp.asarray(rng.normal(size=(3, 5, 6)), jnp.float32)
  shifted = dino(student, jnp.asarray(teacher) - got.reshape(-1), jnp.zeros(6), **DINO_T)
  np.testing.assert_allclose(dino(student, jnp.asarray(teacher), got, **DINO_T), shifted, rtol=1e-5)


def test_dino_teacher_entropy_matches_numpy_and_spans_zero_to_log_k():
  rng = np.random.default_rng(12)
  teacher, center = rng.normal(size=(2, 5, 9)), rng.normal(size=(9,)) * 0.1
  q = np_softmax((teacher - center) / 0.07)
  want = np.mean([-np.sum(row * np.log(row)) for row in q.reshape(-1, 9)])
  got = dino_teacher_entropy(jnp.asarray(teacher, jnp.float32), jnp.asarray(center, jnp.float32), 0.07)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  uniform = dino_teacher_entropy(jnp.ones((2, 5, 9)), jnp.ones((1, 9)), 0.04)
  np.testing.assert_allclose(uniform, np.log(9), rtol=1e-6)
  one_hot = dino_teacher_entropy(100.0 * jnp.eye(9)[None], jnp.zeros(9), 0.04)
  np.testing.assert_allclose(one_hot, 0.0, atol=1e-6)


def test_embedding_std_matches_numpy_and_detects_collapse():
  rng = np.random.default_rng(13)
  z = rng.normal(size=(4096, 32)) + 0.2
  normalised = z / np.linalg.norm(z, axis=1, keepdims=True)
  want = np.mean([np.sqrt(np.mean((normalised[:, j] - normalised[:, j].mean()) ** 2)) for j in range(32)])
  got = embedding_std(jnp.asarray(z, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(embedding_std(jnp.asarray(z - 0.2, jnp.float32)), 1 / np.sqrt(32), rtol=0.02)
  collapsed = jnp.tile(jnp.asarray(z[:1], jnp.float32), (64, 1))
  np.testing.assert_allclose(embedding_std(collapsed), 0.0, atol=1e-6)
  assert np.all(jax.grad(embedding_std)(collapsed) == 0)  # a monitor: no (NaN) gradient at collapse


# ---------------------------------------------------------------------------------------------
# Sharded batch, dtypes, errors.


def test_batch_sharded_over_devices_gives_the_unsharded_values_and_gradients():
  mesh = parallel.make_mesh(jax.devices())
  rows = parallel.batch_sharding(mesh)
  rng = np.random.default_rng(14)
  z_a, z_b = (jnp.asarray(x, jnp.float32) for x in pair_inputs(rng, 16, 8))
  for name, (loss, _, kwargs, argnums) in sorted(PAIR_LOSSES.items()):
    fn = jax.value_and_grad(lambda a, b, loss=loss, kwargs=kwargs: loss(a, b, **kwargs), argnums=argnums)
    want_value, want_grads = fn(z_a, z_b)
    value, grads = jax.jit(fn)(jax.device_put(z_a, rows), jax.device_put(z_b, rows))
    np.testing.assert_allclose(value, want_value, rtol=1e-5, err_msg=name)
    for grad, want in zip(grads, want_grads):
      np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6, err_msg=name)
  student, teacher, center = (jnp.asarray(x, jnp.float32) for x in dino_inputs(rng, 4, 2, 16, 8))
  views = NamedSharding(mesh, P(None, parallel.BATCH_AXES))

  def dino_step(s, t, c):
    loss, grad = jax.value_and_grad(lambda s: dino(s, t, c, **DINO_T))(s)
    return loss, grad, dino_center_update(c, t, 0.9)

  want = dino_step(student, teacher, center)
  got = jax.jit(dino_step)(jax.device_put(student, views), jax.device_put(teacher, views), center)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_low_precision_inputs_are_computed_in_float32(name, x64):
  loss, _, kwargs, _ = PAIR_LOSSES[name]
  z_a, z_b = pair_inputs(np.random.default_rng(15), 8, 4)
  low = loss(jnp.asarray(z_a, jnp.bfloat16), jnp.asarray(z_b, jnp.bfloat16), **kwargs)
  assert low.dtype == jnp.float32  # bfloat16 promoted to float32, not float64 even under x64
  # Only the inputs' rounding to bfloat16 (~3 digits) separates it from the float32 loss.
  rounded = [np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64) for x in (z_a, z_b)]
  np.testing.assert_allclose(float(low), PAIR_LOSSES[name][1](*rounded, **kwargs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_pair_losses_reject_mismatched_or_wrong_rank_inputs(name):
  loss, _, kwargs, _ = PAIR_LOSSES[name]
  with pytest.raises(ValueError, match="same shape"):
    loss(jnp.zeros((4, 3)), jnp.zeros((4, 5)), **kwargs)
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    loss(jnp.zeros((2, 4, 3)), jnp.zeros((2, 4, 3)), **kwargs)


def test_bad_hyperparameters_and_view_counts_are_rejected():
  z = jnp.ones((4, 3))
  with pytest.raises(ConfigError, match="temperature must be > 0"):
    moco_v3(z, z, temperature=0.0)
  with pytest.raises(ConfigError, match="lambd must be >= 0"):
    barlow_twins(z, z, lambd=-1.0)
  with pytest.raises(ValueError, match="at least 2 rows"):
    vicreg(z[:1], z[:1])
  logits = jnp.zeros((2, 4, 5))
  with pytest.raises(ConfigError, match="teacher_temperature must be > 0"):
    dino(logits, logits, jnp.zeros(5), student_temperature=0.1, teacher_temperature=-0.04)
  with pytest.raises(ValueError, match="V_t <= V_s"):
    dino(logits[:1], logits, jnp.zeros(5), **DINO_T)
  with pytest.raises(ValueError, match="V_t <= V_s"):
    dino(logits[:1], logits[:1], jnp.zeros(5), **DINO_T)  # one view: no pair of different views
  with pytest.raises(ValueError, match="center must be"):
    dino(logits, logits, jnp.zeros(4), **DINO_T)
  with pytest.raises(ConfigError, match="momentum"):
    dino_center_update(jnp.zeros(5), logits, 1.5)
