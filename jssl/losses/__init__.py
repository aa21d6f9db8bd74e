"""Pure loss functions."""

from jssl.losses.ntxent import ntxent

__all__ = ["ntxent"]
