"""The pictures ``jssl eval`` draws for any run, so that a person sees at a glance what the
features do:

* ``neighbours.png``: a dozen test images, each with its nearest training images by the
  encoder's features (cosine, as the kNN probe) next to its nearest by raw pixels; a green
  frame marks a neighbour of the query's class, a red one another class.
* ``embedding.png``: the test features projected to 2-D (t-SNE from scikit-learn when it is
  installed, else PCA), coloured by class, next to the same projection of the raw pixels.
* ``summary.png``: the training loss and online-probe curves, the final comparison as bars
  (pretrained vs random init vs raw pixels, linear and kNN), and the accuracy against
  pretraining time when the run was evaluated at several checkpoints.

Everything here is host-side NumPy and matplotlib on at most a few thousand points, so it
stays cheap enough to run by default.
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # Files only; never needs a display.
import matplotlib.pyplot as plt
import numpy as np

FASHION_MNIST_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)
EMBEDDING_POINTS = 2000  # test points projected: t-SNE on 2,000 points takes seconds


def class_names(source_name: str, num_classes: int) -> list[str]:
  """Readable class names where jssl knows them (Fashion-MNIST), else the class numbers."""
  if source_name.split(":")[0] == "fashion_mnist" and num_classes == len(FASHION_MNIST_CLASSES):
    return list(FASHION_MNIST_CLASSES)
  return [str(c) for c in range(num_classes)]


def nearest(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
  """Indices ``int [Q, k]`` of the ``k`` rows of ``bank`` ``[N, D]`` most cosine-similar to
  each query ``[Q, D]``, most similar first (ties: the lower index first)."""
  bank = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
  queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
  similarity = queries.astype(np.float64) @ bank.astype(np.float64).T
  return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def pick_queries(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
  """``count`` test indices spread over the classes (round-robin over them, seeded)."""
  rng = np.random.default_rng(seed)
  by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
  picked = []
  while len(picked) < min(count, len(labels)):
    for members in by_class:
      if members and len(picked) < count:
        picked.append(members.pop())
  return np.asarray(picked, np.int64)


def _show(ax, image: np.ndarray, frame: str | None = None) -> None:
  image = np.clip(image, 0, 1)
  ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(frame is not None)
    if frame is not None:
      spine.set_edgecolor(frame)
      spine.set_linewidth(2.5)


def save_neighbours(
  path: pathlib.Path,
  queries: np.ndarray,
  query_labels: np.ndarray,
  columns: dict[str, tuple[np.ndarray, np.ndarray]],
  names: list[str],
) -> None:
  """One row per query: the query, then for each ``columns`` entry (``title -> (neighbour
  images [Q, k, H, W, C] float in [0, 1], their labels [Q, k])``) its ``k`` neighbours."""
  k = max(images.shape[1] for images, _ in columns.values())
  width = 1 + len(columns) * (k + 1) - 1  # a blank column between the groups
  rows = len(queries)
  fig, axes = plt.subplots(rows, width, figsize=(0.85 * width, 0.9 * rows + 0.4), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for r in range(rows):
    ax = axes[r, 0]
    ax.axis("on")
    _show(ax, queries[r])
    ax.set_ylabel(names[query_labels[r]], fontsize=7, rotation=0, ha="right", va="center")
    for g, (images, labels) in enumerate(columns.values()):
      for j in range(images.shape[1]):
        ax = axes[r, 1 + g * (k + 1) + j]
        ax.axis("on")
        _show(ax, images[r, j], "tab:green" if labels[r, j] == query_labels[r] else "tab:red")
  axes[0, 0].set_title("test image", fontsize=8)
  for g, title in enumerate(columns):
    axes[0, 1 + g * (k + 1) + (k - 1) // 2].set_title(title, fontsize=8)
  fig.tight_layout(pad=0.3)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def project_2d(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
  """``[N, D]`` -> (``[N, 2]``, method): standardised, PCA to at most 50 dimensions, then
  t-SNE (scikit-learn) when it is installed, else the first two principal components."""
  x = np.asarray(x, np.float64)
  x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-8)
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  reduced = x @ vt[: min(50, len(vt))].T
  try:
    from sklearn.manifold import TSNE  # noqa: PLC0415  (optional: PCA without it)
  except ImportError:
    return reduced[:, :2], "PCA"
  perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
  tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
  return tsne.fit_transform(reduced), "t-SNE"


def save_embedding(path: pathlib.Path, panels: dict[str, np.ndarray], labels: np.ndarray, names: list[str]) -> str:
  """Side-by-side 2-D projections of ``panels`` (``title -> [N, D]``), coloured by ``labels``;
  returns the projection's name."""
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 1.6, 5), squeeze=False)
  cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
  method = "PCA"
  for ax, (title, x) in zip(axes[0], panels.items()):
    points, method = project_2d(x)
    for c in range(len(names)):
      chosen = labels == c
      ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=cmap(c % cmap.N), label=names[c], alpha=0.8)
    ax.set_title(f"{title} ({method})", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
  axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=3, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return method


def pretraining_minutes(metrics: list[dict], batch_size: int) -> dict[int, float]:
  """Minutes of pretraining at each logged step, from the logged images/s: each interval
  between two logs took ``steps * batch_size / images_per_s`` seconds."""
  minutes, total, previous = {}, 0.0, 0
  for m in metrics:
    if "images_per_s" in m and m["images_per_s"] > 0:
      total += (m["step"] - previous) * batch_size / m["images_per_s"] / 60
      previous = m["step"]
      minutes[m["step"]] = total
  return minutes


def save_summary(
  path: pathlib.Path, metrics: list[dict], results: dict, history: list[dict], *, batch_size: int, knn_k: int
) -> None:
  """The run at a glance: loss and online probe against step, the final scores as bars, and
  (with evaluations at two or more steps in ``history``) accuracy against pretraining minutes."""
  curves = [key for key in ("loss", "probe_top1") if any(key in m for m in metrics)]
  steps_seen = sorted({h["step"] for h in history})
  panels = len(curves) + 1 + (len(steps_seen) > 1)
  fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
  axes = list(axes[0])
  for key in curves:
    ax = axes.pop(0)
    logged = [m for m in metrics if key in m]
    ax.plot([m["step"] for m in logged], [m[key] for m in logged])
    ax.set_xlabel("step")
    ax.set_title({"loss": "training loss", "probe_top1": "online probe top-1"}[key])
    ax.grid(alpha=0.3)
  ax = axes.pop(0)
  knn = f"knn_k{knn_k}_top1"
  rows = [("pretrained", ""), ("random init", "random_init_"), ("raw pixels", "raw_pixels_")]
  rows = [(label, prefix) for label, prefix in rows if prefix + "linear_top1" in results]
  x = np.arange(len(rows))
  for offset, (key, title) in ((-0.2, ("linear_top1", "linear")), (0.2, (knn, f"kNN k={knn_k}"))):
    values = [results.get(prefix + key, np.nan) for _, prefix in rows]
    bars = ax.bar(x + offset, values, width=0.4, label=title)
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
  ax.set_xticks(x, [label for label, _ in rows])
  ax.set_ylim(0, 1.08)
  ax.set_title(f"test top-1 at step {results['step']}")
  ax.legend(fontsize=8, loc="lower right")
  if len(steps_seen) > 1:
    ax = axes.pop(0)
    minutes = pretraining_minutes(metrics, batch_size)
    latest = {h["step"]: h for h in history}  # the last evaluation of each step
    steps = [s for s in steps_seen if s in minutes]
    for key, title in (("linear_top1", "linear"), (knn, f"kNN k={knn_k}")):
      ax.plot([minutes[s] for s in steps], [latest[s].get(key, np.nan) for s in steps], "o-", label=title)
    raw = results.get("raw_pixels_linear_top1")
    if raw is not None:
      ax.axhline(raw, color="gray", linestyle="--", label="raw pixels, linear")
    ax.set_xlabel("pretraining minutes")
    ax.set_title("accuracy against pretraining time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
