"""Normalised mutual information of two labelings (NumPy, host side): how far two
clusterings of the same examples agree (DeepCluster reports it between epochs)."""

import numpy as np


def normalized_mutual_info(a, b) -> float:
  """NMI of two labelings of the same examples: ``I(a; b) / mean(H(a), H(b))`` in [0, 1].

  The arithmetic-mean normalisation is scikit-learn's default. DeepCluster reports the NMI
  between consecutive epochs' clusterings to show how the assignments settle. 1.0 when
  both labelings are constant (they agree).
  """
  a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
  if a.shape != b.shape:
    raise ValueError(f"labelings differ in length: {a.shape} and {b.shape}.")
  _, a = np.unique(a, return_inverse=True)
  _, b = np.unique(b, return_inverse=True)
  pairs, joint = np.unique(a.astype(np.int64) * (b.max() + 1) + b, return_counts=True)
  n = float(len(a))
  pa, pb, pab = np.bincount(a) / n, np.bincount(b) / n, joint / n

  def entropy(p):
    return float(-np.sum(p * np.log(p)))

  ha, hb = entropy(pa), entropy(pb)
  if ha == 0 and hb == 0:
    return 1.0
  mi = float(np.sum(pab * (np.log(pab) - np.log(pa[pairs // (b.max() + 1)]) - np.log(pb[pairs % (b.max() + 1)]))))
  return max(0.0, min(1.0, mi / (0.5 * (ha + hb))))
