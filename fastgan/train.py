"""Algorithm 1 of the paper: k discriminator steps, then one generator step, by minibatch SGD.

The paper's released MNIST settings: minibatch 100, k = 1, SGD with learning rate 0.1 divided by 1.000004
after every step down to 1e-6, momentum 0.5 rising linearly to 0.7 by epoch 250 (TrainConfig.optimizer "adam":
Adam instead, with the same lr schedule and beta1 = the momentum, for the convolutional presets). Trainer adds what a
long run needs: tqdm progress, a JSONL metrics log, atomic checkpoints (every N steps, at exit and on
Ctrl-C) that resume bit-identically (models, optimizers, schedule, data order, RNG), and a stop with a
clear message when a loss turns NaN/inf, leaving the last good checkpoint in place.

Conditional nets (num_classes > 0) train on (image, label) pairs. The fakes of a D step take the real batch's
labels, and the G step the last real batch's: fakes and reals then have the same classes in every minibatch, so
the odds real:fake are 1 given any c and D's optimum is Proposition 1's p_data(x|c) / (p_data(x|c) + p_g(x|c))
class by class, whatever the data's class frequencies; and the labels cost no random numbers, so a run draws
the same data order and noise as an unconditional one.
"""
import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

from .models import Discriminator, Generator, ModelConfig, build_models, check_labels

__all__ = ["PRESETS", "TrainConfig", "Trainer", "TrainingDiverged", "models_from_checkpoint", "save_atomic"]

CHECKPOINT_NAME = "checkpoint.pt"
OPTIMIZERS = ("sgd", "adam")
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 100
    k: int = 1  # discriminator steps per generator step
    lr: float = 0.1
    lr_decay: float = 1.000004  # lr / lr_decay**step
    min_lr: float = 1e-6
    momentum_start: float = 0.5
    momentum_end: float = 0.7
    momentum_saturate_epoch: int = 250
    optimizer: str = "sgd"  # or "adam", whose beta1 follows the momentum schedule (beta2 0.999)
    saturating: bool = False  # G minimises log(1 - D(G(z))) (the minimax game) instead of -log D(G(z))
    steps: Optional[int] = None  # generator steps to train for, unless --steps/--minutes say otherwise
    minutes: Optional[float] = None  # and a wall-time cap
    checkpoint_every: int = 1000
    log_every: int = 50
    seed: int = 0
    parzen_samples: int = 10_000  # generated samples for the Parzen estimate (the paper's 10k)
    dataset: str = "mnist"  # a key of fastgan.data.DATASETS

    def __post_init__(self):
        for name in ("batch_size", "k", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or not self.lr_decay >= 1:
            raise ValueError(f"lr must be > 0 and lr_decay >= 1, got {self.lr} and {self.lr_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


# Both presets are the paper's nets and optimiser. mnist-quick stops after 6,000 steps (~1.5 minutes at the
# ~16 ms a step of a quiet 2-core CPU) and estimates the log-likelihood from 2,000 samples instead of 10,000,
# so its figures sit below a long run's. It has a step budget, not a time budget: cut short on a busy
# machine, a GAN stops in its early phase, where D wins and the log-likelihood first drops (measured: 468
# steps in 5 busy minutes gave -198, below the untrained -72). --minutes adds a time cap.
#
# The convolutional nets: D (d_conv_channels) is two 5x5 stride-2 convolutions to 32 and 64 maxout units of 2
# pieces, G (g_conv_channels) its mirror, z -> ReLU projection to 64 maps of 7 x 7 -> 5x5 stride-2 transposed
# convolutions to 32 maps of 14 x 14 (ReLU) and to the image; for CIFAR-10's 32 x 32 x 3 both are twice as wide (D
# 64, 128; G 128 maps of 8 x 8, then 64). The fully connected CIFAR-10 G and D are the MNIST ones widened to 3,072
# pixels. The paper gives no sizes for any of these, so they are ours. G's weights are U(+-0.15) (U(+-0.1) at
# CIFAR-10's doubled fan-ins, where 0.15 grows them to 1.8), which keeps the untrained G's pre-activations at a
# standard deviation of 0.5-1 in every layer: at the MLP's 0.05 they shrink to 0.025 at the output, and the pixels
# vary by 0.003 across z. The conv nets train with Adam (lr 2e-4, beta1 0.5, as DCGAN; Algorithm 1 allows any
# gradient-based rule): under the paper's SGD the conv D sat at D = 1/2 for ~250 steps, then won within ~100
# (D(G(z)) 0.02 or less) and G never recovered, at every lr, width and G we tried; under Adam D(G(z)) stays at
# 0.2-0.3 over mnist-conv's 6,000 steps, but with the MLP G it was mostly below 0.01 from step ~3,000 (Parzen -313
# against the conv G's -5; RESULTS.md). mnist-conv's step takes ~3x the MLP's.
_CONV = ModelConfig(d_conv_channels=(32, 64), d_pieces=2, g_hidden=(), g_conv_channels=(64, 32), g_init_range=0.15)
_CIFAR10 = ModelConfig(data_dim=3072, image_shape=(3, 32, 32))
_ADAM = {"optimizer": "adam", "lr": 2e-4, "momentum_start": 0.5, "momentum_end": 0.5}
_LONG = TrainConfig(steps=100_000, checkpoint_every=2000)
_LONG_CONV = dataclasses.replace(_LONG, **_ADAM)
PRESETS = {
    "mnist-paper": (ModelConfig(), _LONG),
    "mnist-quick": (ModelConfig(), TrainConfig(steps=6000, checkpoint_every=1000, parzen_samples=2000)),
    "mnist-conv": (_CONV, TrainConfig(steps=6000, checkpoint_every=1000, parzen_samples=2000, **_ADAM)),
    "fashion-mnist-mlp": (ModelConfig(), dataclasses.replace(_LONG, dataset="fashion-mnist")),
    "fashion-mnist-conv": (_CONV, dataclasses.replace(_LONG_CONV, dataset="fashion-mnist")),
    "cifar10-mlp": (_CIFAR10, dataclasses.replace(_LONG, dataset="cifar10")),
    "cifar10-conv": (dataclasses.replace(_CIFAR10, d_conv_channels=(64, 128), d_pieces=2, g_hidden=(),
                                         g_conv_channels=(128, 64), g_init_range=0.1),
                     dataclasses.replace(_LONG_CONV, dataset="cifar10")),
}


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN/inf; training stopped without overwriting the last good checkpoint."""


def save_atomic(obj, path: Union[str, Path]):
    """torch.save to a temporary file beside path, then os.replace: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def models_from_checkpoint(state, backend: str = "auto"):
    """(Generator, Discriminator) rebuilt from a Trainer checkpoint (the dict Trainer.load_checkpoint returns)."""
    if "model_config" not in state:
        raise ValueError("the checkpoint has no model_config: it was not written by `python -m fastgan train`")
    generator, discriminator = build_models(ModelConfig.from_dict(state["model_config"]), backend=backend)
    generator.load_state_dict(state["generator"])
    discriminator.load_state_dict(state["discriminator"])
    return generator, discriminator


def _distributed_rank_and_size():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rng_state():
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _optimizer(params, config):
    # fused=True: one pass over parameter, gradient and momentum (SGD: 1.06 against 1.40 ms a step for both
    # nets' 3.7M parameters on one core).
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(config.momentum_start, 0.999), fused=True)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum_start, fused=True)


class Trainer:
    """Trains (generator, discriminator) on train_images [N, D] with Algorithm 1; conditional nets also take
    train_labels [N], class indices.

    Data order and noise come from the Trainer's own generator (seeded with config.seed), dropout seeds from
    torch's global one (seeded with config.seed + rank); both are saved in every checkpoint. out_dir
    (optional) receives checkpoint.pt and metrics.jsonl.

    Data parallel: inside an initialised torch.distributed process group (gloo or nccl), every rank draws
    the whole global batch from the shared data generator, trains on its 1/world_size of the rows, and the
    gradients are averaged (all-reduce) before each update, as DistributedDataParallel does; give out_dir
    to rank 0 only. Single-process resume is bit-identical; a multi-process one re-seeds dropout per rank.
    """

    def __init__(self, generator: Generator, discriminator: Discriminator, train_images: Tensor,
                 config: TrainConfig = TrainConfig(), out_dir: Union[str, Path, None] = None, extra_state=None,
                 train_labels: Optional[Tensor] = None, compile: bool = False):
        if train_images.dim() != 2 or len(train_images) < config.batch_size:
            raise ValueError(f"train_images must be [N >= batch_size={config.batch_size}, D], "
                             f"got shape {tuple(train_images.shape)}")
        if generator.num_classes != discriminator.num_classes:
            raise ValueError(f"generator and discriminator disagree on num_classes: {generator.num_classes} "
                             f"and {discriminator.num_classes}")
        check_labels(train_labels, generator.num_classes, len(train_images), "train_labels")
        self.generator, self.discriminator = generator, discriminator
        self.train_images, self.train_labels = train_images, train_labels
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.extra_state = extra_state or {}  # saved alongside, e.g. the preset and data source for `evaluate`
        self.g_optimizer = _optimizer(generator.parameters(), config)
        self.d_optimizer = _optimizer(discriminator.parameters(), config)
        self.step = 0  # generator steps taken
        self.epoch = 0  # completed passes over the training data
        self.order = None  # this epoch's permutation of the training set
        self.position = 0  # next index into order
        self.elapsed = 0.0  # training seconds over all sessions
        self.last_checkpoint_step = None
        self.rank, self.world_size = _distributed_rank_and_size()
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size {config.batch_size} must divide evenly over {self.world_size} processes")
        self.data_rng = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed + self.rank)  # different dropout masks on every rank
        # compile: both losses (G and D forward, the fused ops and their backward) under torch.compile; the
        # dropout seeds come in as arguments, so there is one graph each and no graph break.
        self.compiled = compile
        self._d_loss = torch.compile(self._discriminator_loss) if compile else self._discriminator_loss
        self._g_loss = torch.compile(self._generator_loss) if compile else self._generator_loss

    # --- schedule -------------------------------------------------------------------------------------------

    def learning_rate(self) -> float:
        return max(self.config.lr / self.config.lr_decay ** self.step, self.config.min_lr)

    def momentum(self) -> float:
        c = self.config
        progress = min(self.epoch / c.momentum_saturate_epoch, 1.0) if c.momentum_saturate_epoch > 0 else 1.0
        return c.momentum_start + (c.momentum_end - c.momentum_start) * progress

    def _next_batch(self):
        """(images, labels) of the next minibatch; labels None for unconditional nets."""
        n, m = len(self.train_images), self.config.batch_size
        if self.order is None or self.position + m > n:  # the remainder of < m digits waits for the next epoch
            if self.order is not None:
                self.epoch += 1
            self.order = torch.randperm(n, generator=self.data_rng)
            self.position = 0
        indices = self.order[self.position:self.position + m]
        self.position += m
        return self.train_images[indices], None if self.train_labels is None else self.train_labels[indices]

    # --- Algorithm 1 ----------------------------------------------------------------------------------------

    # --- data parallel: every rank draws the whole global batch (same RNG everywhere), keeps its rows ---------

    def _shard(self, batch: Optional[Tensor]) -> Optional[Tensor]:
        if self.world_size == 1 or batch is None:
            return batch
        rows = len(batch) // self.world_size
        return batch[self.rank * rows:(self.rank + 1) * rows]

    def _average_gradients(self, params):
        # Equal shards and mean losses: the global batch's gradient is the mean of the ranks' (what DDP does).
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for p in params:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= self.world_size

    def _dropout_seeds(self):
        # from torch's default generator, which the checkpoints save
        return torch.randint(0, 2**63 - 1, (self.discriminator.dropout_layers,)).tolist()

    def _discriminator_loss(self, real, labels, noise, seeds):
        with torch.no_grad():
            fake = self.generator(noise, labels)
        # run() checks both losses once a step, so the op's NaN check (a host sync) is off
        return self.discriminator.loss(real, fake, check_finite=False, real_labels=labels, fake_labels=labels,
                                       seeds=seeds)

    def _generator_loss(self, noise, labels, seeds):
        return self.discriminator.generator_loss(self.generator(noise, labels), saturating=self.config.saturating,
                                                 check_finite=False, labels=labels, seeds=seeds)

    def train_step(self):
        """One iteration of Algorithm 1. Returns (d_loss, g_loss, DStats) as tensors (no host sync)."""
        c, g, d = self.config, self.generator, self.discriminator
        lr, momentum = self.learning_rate(), self.momentum()
        for optimizer in (self.g_optimizer, self.d_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = lr
                if c.optimizer == "adam":
                    group["betas"] = (momentum, group["betas"][1])
                else:
                    group["momentum"] = momentum
        for _ in range(c.k):
            real, labels = map(self._shard, self._next_batch())
            noise = self._shard(g.noise(c.batch_size, self.data_rng))
            d_loss, stats = self._d_loss(real, labels, noise, self._dropout_seeds())
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self._average_gradients(d.parameters())
            self.d_optimizer.step()
        noise = self._shard(g.noise(c.batch_size, self.data_rng))
        g_loss = self._g_loss(noise, labels, self._dropout_seeds())
        # autograd.grad for G's parameters only: D's weight gradients are not needed in this step.
        params = list(g.parameters())
        for p, grad in zip(params, torch.autograd.grad(g_loss, params)):
            p.grad = grad
        self._average_gradients(params)
        self.g_optimizer.step()
        self.step += 1
        return d_loss.detach(), g_loss.detach(), stats

    # --- checkpoints ----------------------------------------------------------------------------------------

    def state_dict(self):
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
            "step": self.step, "epoch": self.epoch, "order": self.order, "position": self.position,
            "elapsed": self.elapsed,
            "rng": _rng_state(),
            "data_rng": self.data_rng.get_state(),
            "train_config": dataclasses.asdict(self.config),
            **self.extra_state,
        }

    def load_state_dict(self, state):
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.order, self.position = state["order"], state["position"]
        self.elapsed = state["elapsed"]
        self.data_rng.set_state(state["data_rng"])
        _set_rng_state(state["rng"])
        if self.world_size > 1:  # the checkpoint holds rank 0's dropout stream
            torch.manual_seed(self.config.seed + self.step * self.world_size + self.rank)
        self.last_checkpoint_step = self.step

    def _parameters_finite(self) -> bool:
        params = [*self.generator.parameters(), *self.discriminator.parameters()]
        return all(bool(torch.isfinite(p).all()) for p in params)

    def save_checkpoint(self, path: Union[str, Path, None] = None) -> Path:
        """Atomically write the full training state; refuses (TrainingDiverged) if a parameter is NaN/inf."""
        path = Path(path) if path is not None else self._require_out_dir() / CHECKPOINT_NAME
        if not self._parameters_finite():
            raise TrainingDiverged(self._diverged_message("a parameter is NaN/inf"))
        save_atomic(self.state_dict(), path)
        self.last_checkpoint_step = self.step
        return path

    @classmethod
    def load_checkpoint(cls, path: Union[str, Path]):
        # weights_only=False: the checkpoint holds RNG states and plain dicts we wrote ourselves.
        return torch.load(path, map_location="cpu", weights_only=False)

    def _require_out_dir(self) -> Path:
        if self.out_dir is None:
            raise ValueError("out_dir is None: pass a checkpoint path or make the Trainer with out_dir")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir

    def _diverged_message(self, what):
        kept = (f"the last good checkpoint (step {self.last_checkpoint_step}) is kept"
                if self.last_checkpoint_step is not None else "no checkpoint was written")
        return (f"training diverged at step {self.step}: {what}; stopped, {kept}. "
                "Try a lower --lr or the non-saturating generator loss.")

    # --- the loop -------------------------------------------------------------------------------------------

    def run(self, steps: Optional[int] = None, minutes: Optional[float] = None, progress: bool = True) -> str:
        """Train until `steps` total generator steps or `minutes` of wall time (whichever comes first).

        Returns "done", or "interrupted" after Ctrl-C (a checkpoint is saved either way when out_dir is set).
        Raises TrainingDiverged on a NaN/inf loss.
        """
        from tqdm.auto import tqdm

        if steps is None and minutes is None:
            raise ValueError("give steps or minutes (or both)")
        deadline = time.monotonic() + 60 * minutes if minutes is not None else math.inf
        c = self.config
        log = open(self._require_out_dir() / METRICS_NAME, "a") if self.out_dir is not None else None
        bar = tqdm(total=steps, initial=self.step, disable=not progress, unit="step", dynamic_ncols=True)
        sums, count = torch.zeros(5, dtype=torch.float64), 0  # d_loss, g_loss, D(x), D(G(z)), accuracy
        started = time.monotonic()
        interrupted = []
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            # Ctrl-C ends the loop between steps, so the checkpoint never holds half a step; a second one kills.
            def on_sigint(signum, frame):
                signal.signal(signal.SIGINT, previous_handler)
                interrupted.append(True)

            previous_handler = signal.signal(signal.SIGINT, on_sigint)
        try:
            while (steps is None or self.step < steps) and time.monotonic() < deadline and not interrupted:
                d_loss, g_loss, stats = self.train_step()
                values = torch.stack([d_loss.double(), g_loss.double(), stats.d_real.double(),
                                      stats.d_fake.double(), stats.accuracy.double()])
                if not bool(torch.isfinite(values[:2]).all()):
                    raise TrainingDiverged(self._diverged_message(
                        f"D loss {d_loss.item()}, G loss {g_loss.item()}"))
                sums += values
                count += 1
                bar.update(1)
                if self.step % c.log_every == 0:
                    mean = (sums / count).tolist()
                    record = dict(step=self.step, epoch=self.epoch, lr=self.learning_rate(), momentum=self.momentum(),
                                  d_loss=mean[0], g_loss=mean[1], d_real=mean[2], d_fake=mean[3], d_accuracy=mean[4],
                                  elapsed_s=round(self.elapsed + time.monotonic() - started, 3))
                    bar.set_postfix(D=f"{mean[0]:.3f}", G=f"{mean[1]:.3f}", Dx=f"{mean[2]:.2f}", DGz=f"{mean[3]:.2f}")
                    if log is not None:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    sums.zero_()
                    count = 0
                if self.out_dir is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.elapsed += time.monotonic() - started
                    started = time.monotonic()
                    self.save_checkpoint()
        finally:
            if previous_handler is not None and not interrupted:
                signal.signal(signal.SIGINT, previous_handler)
            bar.close()
            if log is not None:
                log.close()
        self.elapsed += time.monotonic() - started
        status = "interrupted" if interrupted else "done"
        if self.out_dir is not None:
            path = self.save_checkpoint()
            if interrupted:
                print(f"interrupted at step {self.step}; saved {path} (continue with --resume)")
        return status
