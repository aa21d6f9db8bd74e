"""Checks `jssl eval`'s linear probe against scikit-learn on an exported encoder's features.

  .venv/bin/jssl export --workdir runs/demo --out runs/demo_npz --format npz
  .venv/bin/python benchmarks/probe_vs_sklearn.py runs/demo_npz [--data-dir /usr/share/datasets/fashion-mnist]

Extracts the encoder's features of the Fashion-MNIST train and test splits with
``jssl.load_encoder``, standardises them with the train statistics (as ``jssl eval`` does),
fits scikit-learn's ``LogisticRegression`` (L-BFGS, ``max_iter=1000``) for each C, and
prints one JSON object: test top-1, iterations and seconds per C. Compare with
``linear_top1`` in the run's ``eval.json``. Needs scikit-learn (the ``test`` extra).
"""

import argparse
import json
import time

from sklearn.linear_model import LogisticRegression

import jssl
from jssl.data.sources import make_source
from jssl.probes import standardize


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("export", help="a `jssl export --format npz|orbax` folder")
  parser.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX folder (default: jssl's)")
  parser.add_argument("--C", type=float, nargs="+", default=[0.1, 1.0])
  args = parser.parse_args()
  encoder = jssl.load_encoder(args.export)
  source = make_source("fashion_mnist", data_dir=args.data_dir)
  (train_images, train_y), (test_images, test_y) = source.arrays("train"), source.arrays("test")
  train_x, test_x = standardize(encoder(train_images), encoder(test_images))
  results = {"export": args.export, "num_train": len(train_y), "num_test": len(test_y)}
  for c in args.C:
    started = time.perf_counter()
    model = LogisticRegression(C=c, max_iter=1000).fit(train_x, train_y)
    results[f"sklearn_C{c:g}"] = {
      "top1": float(model.score(test_x, test_y)),
      "iterations": int(model.n_iter_[0]),
      "seconds": round(time.perf_counter() - started, 1),
    }
  print(json.dumps(results))


if __name__ == "__main__":
  main()
