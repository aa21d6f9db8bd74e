"""Pure loss functions."""

from jssl.losses.ntxent import ntxent
from jssl.losses.ntxent_chunked import ntxent_chunked

__all__ = ["ntxent", "ntxent_chunked"]
