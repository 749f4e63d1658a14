"""Tiny blocks for recipe tests (not registered globally; tests pass them as an explicit registry)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from reduce.core.block import Block


class Scale(Block):
    """Multiply the pixels by ``factor``.

    A longer description that ``reduce blocks Scale`` prints in full.
    """

    register = False
    provides = ("data",)

    def __init__(self, *, factor: float = 1.0, mode: Literal["mul", "add"] = "mul",
                 radii: list[float] | None = None, n: int = 3, flag: bool = False,
                 margin: int | tuple[int, int] | None = None, weights: np.ndarray | None = None):
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        self.factor, self.mode, self.radii, self.n, self.flag = factor, mode, radii, n, flag
        self.margin, self.weights = margin, weights

    def run(self, image):
        image.data = image.data * self.factor


class Needs(Block):
    """A block with a required parameter and objects supplied by the runner."""

    register = False
    runtime_params = ("frames",)

    def __init__(self, *, size: int, frames=None, reference=None, label: str = "x"):
        self.size, self.frames, self.reference, self.label = size, frames, reference, label

    def run(self, image):
        pass


class Opaque:
    """Something no YAML value can be."""


class Model(Block):
    """A block whose ``model`` can only come from the runner (annotation says so)."""

    register = False

    def __init__(self, model: Opaque | None = None, *, sigma: float = 3.0):
        self.model, self.sigma = model, sigma

    def run(self, image):
        pass


REGISTRY = {"Scale": Scale, "Needs": Needs, "Model": Model}
