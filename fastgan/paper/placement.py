"""Where a run's work lives: its device, and its share of each batch inside a torch.distributed group.

Data parallel as DistributedDataParallel does it: every rank draws the whole global batch from the shared
data generator (the same on every rank), trains on its 1/world_size of the rows, and the gradients are
averaged before each update.
"""
import torch

__all__ = ["Placement"]


class Placement:
    """rank and world_size of the initialised torch.distributed group (0 and 1 without one)."""

    def __init__(self, device="cpu"):
        import torch.distributed as dist

        self.device = torch.device(device)
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world_size = dist.get_world_size() if distributed else 1

    def shard(self, batch):
        """This rank's contiguous rows of a global batch (None stays None)."""
        if self.world_size == 1 or batch is None:
            return batch
        rows = len(batch) // self.world_size
        return batch[self.rank * rows:(self.rank + 1) * rows]

    def average_gradients(self, params):
        # Equal shards and mean losses: the global batch's gradient is the mean of the ranks'.
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for p in params:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= self.world_size
