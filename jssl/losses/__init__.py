"""Pure loss functions."""

from jssl.losses.barlow_twins import barlow_twins
from jssl.losses.byol import byol
from jssl.losses.collapse import embedding_std
from jssl.losses.dino import dino, dino_center_update, dino_teacher_entropy
from jssl.losses.moco_v3 import moco_v3
from jssl.losses.ntxent import ntxent
from jssl.losses.ntxent_chunked import ntxent_chunked
from jssl.losses.simsiam import simsiam
from jssl.losses.vicreg import vicreg, vicreg_terms

__all__ = [
  "barlow_twins",
  "byol",
  "dino",
  "dino_center_update",
  "dino_teacher_entropy",
  "embedding_std",
  "moco_v3",
  "ntxent",
  "ntxent_chunked",
  "simsiam",
  "vicreg",
  "vicreg_terms",
]
