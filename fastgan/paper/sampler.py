"""Minibatches of the training set in a fresh random order every epoch, drawn from the run's own generator."""
from typing import Optional

import torch
from torch import Tensor

__all__ = ["BatchSampler"]


class BatchSampler:
    """Index batches of `batch_size` from a permutation of range(n) per epoch; the remainder of fewer than
    batch_size rows waits for the next epoch. Its state (epoch, order, position) is part of a checkpoint."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        if n < batch_size:
            raise ValueError(f"the training set must hold at least batch_size={batch_size} rows, got {n}")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.epoch = 0  # completed passes over the data
        self.order: Optional[Tensor] = None  # this epoch's permutation
        self.position = 0  # next index into order

    def next(self) -> Tensor:
        if self.order is None or self.position + self.batch_size > self.n:
            if self.order is not None:
                self.epoch += 1
            self.order = torch.randperm(self.n, generator=self.generator)
            self.position = 0
        indices = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict):
        self.epoch, self.order, self.position = state["epoch"], state["order"], state["position"]
