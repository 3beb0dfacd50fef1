"""The paper's MNIST nets (section 5, and the released pylearn2 settings).

Generator: Gaussian z in R^100 -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid, weights U(+-0.05), the output
bias the logit of the data's mean pixels (so an untrained G already draws the average digit).
Discriminator: maxout 240x5 -> maxout 240x5 -> one logit, dropout keep 0.8 on its input and 0.5 on the
hidden layers, weights U(+-0.005). Its output layer is never applied in training: its weight and bias go
to fastgan's fused linear log-loss, so the logits are not stored (Discriminator.loss / generator_loss).

Conditional nets (section 7, extension 1; ModelConfig.num_classes > 0): the class label c enters both nets
as a one-hot vector concatenated to their bottom layer's input, G: [z, onehot(c)] and D: [x, onehot(c)].
Convolutional D (ModelConfig.d_conv_channels, as the paper's CIFAR-10 experiments used): strided 5x5
convolutions, each followed by fused maxout over channel groups and dropout, then the same output layer.
Convolutional ("deconvolutional") G (ModelConfig.g_conv_channels), its mirror: the fully connected layers end
in a ReLU projection to feature maps of 1/2^n the image's height and width, then n 5x5 stride-2 transposed
convolutions double them, ReLU between, the last to the image's channels; a per-pixel bias (the logit of the
data's mean pixels, as the MLP G's output bias) and the sigmoid follow.
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from fastgan.nn import Linear, MaxoutConv2d, MaxoutLinear
from fastgan.ops import check_tensor, maxout_dropout

__all__ = ["Discriminator", "Generator", "ModelConfig", "build_models", "check_labels", "one_hot_labels"]

# The released code clips the marginals before the logit; 1e-7 keeps the always-black border finite.
_MARGINAL_CLIP = 1e-7


@dataclass(frozen=True)
class ModelConfig:
    data_dim: int = 784
    noise_dim: int = 100
    g_hidden: Sequence[int] = (1200, 1200)
    g_init_range: float = 0.05
    d_units: int = 240
    d_pieces: int = 5
    d_layers: int = 2
    d_input_dropout: float = 0.2  # drop probability; the paper's keep 0.8
    d_hidden_dropout: float = 0.5
    d_init_range: float = 0.005
    num_classes: int = 0  # > 0: conditional nets p(x | c); 0 (checkpoints written before it existed) unconditional
    image_shape: Sequence[int] = (1, 28, 28)  # (C, H, W) of one data row, for pictures and the convolutional nets
    d_conv_channels: Sequence[int] = ()  # units of each strided convolution of a convolutional D; () is the MLP
    g_conv_channels: Sequence[int] = ()  # channels of G's feature maps, coarsest first; () is the MLP

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        for name in ("g_hidden", "image_shape", "d_conv_channels", "g_conv_channels"):
            if name in values:  # checkpoints written before image_shape and the conv options existed lack them
                values[name] = tuple(values[name])
        return cls(**values)


def check_labels(labels: Optional[Tensor], num_classes: int, rows: int, name: str = "labels"):
    """ValueError/TypeError naming `name` unless labels fit a net with num_classes classes: None when it is
    unconditional (num_classes 0), else [rows] integer class indices in [0, num_classes)."""
    if num_classes == 0:
        if labels is not None:
            raise ValueError(f"{name} given, but the net is unconditional (num_classes=0)")
        return
    if labels is None:
        raise ValueError(f"{name} are required: the net is conditional (num_classes={num_classes})")
    check_tensor(labels, name, floating=False)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != (rows,):
        raise ValueError(f"{name} must have shape ({rows},), one per row, got {tuple(labels.shape)}")
    if rows and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must be in [0, {num_classes}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")


def one_hot_labels(labels: Optional[Tensor], num_classes: int, rows: int, like: Tensor, name: str = "labels"):
    """check_labels, then the labels as one-hot rows [rows, num_classes] of like's dtype and device (None for
    an unconditional net)."""
    check_labels(labels, num_classes, rows, name)
    if num_classes == 0:
        return None
    return nn.functional.one_hot(labels.to(like.device), num_classes).to(like.dtype)


def _uniform_init(layer, init_range):
    nn.init.uniform_(layer.weight, -init_range, init_range)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _check_image_shape(image_shape, data_dim: int):
    if image_shape is None or len(image_shape) != 3 or math.prod(image_shape) != data_dim:
        raise ValueError(f"image_shape must be (C, H, W) with C*H*W = data_dim={data_dim}, got {image_shape}")


def _transposed_conv(c_in, c_out, init_range, bias):
    # output_padding 1: exactly twice the input's height and width, undoing the D's 5x5 stride-2 halving
    layer = nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=bias)
    _uniform_init(layer, init_range)
    return layer


class Generator(nn.Module):
    """z [N, noise_dim] (and, when num_classes > 0, labels [N]) -> x [N, data_dim] in (0, 1).

    Fully connected (the paper's MNIST G): ReLU layers of `hidden` units, then a sigmoid layer. With
    conv_channels (and image_shape (C, H, W), C*H*W = data_dim, H and W multiples of 2^n, n =
    len(conv_channels)): after the `hidden` layers a ReLU projection to conv_channels[0] maps of H/2^n x W/2^n,
    then one 5x5 stride-2 transposed convolution per entry, doubling H and W, to the next entry's channels (ReLU)
    and last to C, without bias: `pixel_bias` [data_dim] is added before the sigmoid. The fully connected layers
    are fastgan.nn.Linear on `backend` (oneDNN products on the CPU).
    """

    def __init__(self, noise_dim: int = 100, hidden: Sequence[int] = (1200, 1200), data_dim: int = 784,
                 init_range: float = 0.05, pixel_means: Optional[Tensor] = None, num_classes: int = 0,
                 conv_channels: Sequence[int] = (), image_shape: Optional[Sequence[int]] = None,
                 backend: str = "auto"):
        super().__init__()
        self.noise_dim, self.num_classes, self.data_dim = noise_dim, num_classes, data_dim
        self.image_shape = tuple(image_shape) if image_shape is not None else None  # (C, H, W) of a row, for pictures
        sizes = [noise_dim + num_classes, *hidden]
        if conv_channels:
            _check_image_shape(image_shape, data_dim)
            if min(conv_channels) < 1:
                raise ValueError(f"g_conv_channels must all be >= 1, got {tuple(conv_channels)}")
            scale = 2 ** len(conv_channels)
            if image_shape[1] % scale or image_shape[2] % scale:
                raise ValueError(f"image_shape's height and width must be multiples of 2^len(g_conv_channels)="
                                 f"{scale}, got {tuple(image_shape)}")
            first = (conv_channels[0], image_shape[1] // scale, image_shape[2] // scale)
            sizes.append(math.prod(first))
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            linear = Linear(n_in, n_out, backend=backend)
            _uniform_init(linear, init_range)
            layers += [linear, nn.ReLU()]
        if conv_channels:
            layers.append(nn.Unflatten(1, first))
            for c_in, c_out in zip(conv_channels[:-1], conv_channels[1:]):
                layers += [_transposed_conv(c_in, c_out, init_range, bias=True), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        if conv_channels:
            self.output = _transposed_conv(conv_channels[-1], image_shape[0], init_range, bias=False)
            self.pixel_bias = nn.Parameter(torch.zeros(data_dim))
        else:
            self.output = Linear(sizes[-1], data_dim, backend=backend)
            _uniform_init(self.output, init_range)
            self.pixel_bias = None
        if pixel_means is not None:
            if pixel_means.shape != (data_dim,):
                raise ValueError(f"pixel_means must have shape ({data_dim},), got {tuple(pixel_means.shape)}")
            with torch.no_grad():
                bias = self.output.bias if self.pixel_bias is None else self.pixel_bias
                bias.copy_(torch.logit(pixel_means.clamp(_MARGINAL_CLIP, 1 - _MARGINAL_CLIP)))

    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        one_hot = one_hot_labels(labels, self.num_classes, len(z), z)
        logits = self.output(self.hidden(z if one_hot is None else torch.cat([z, one_hot], 1)))
        if self.pixel_bias is not None:
            logits = logits.flatten(1) + self.pixel_bias
        return torch.sigmoid(logits)

    def noise(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """n Gaussian noise vectors on the generator's device (drawn where `generator` lives, then moved)."""
        weight = self.output.weight
        device = generator.device if generator is not None else weight.device
        return torch.randn(n, self.noise_dim, generator=generator, device=device, dtype=weight.dtype).to(weight.device)

    def balanced_labels(self, n: int) -> Optional[Tensor]:
        """The classes in turn (0, 1, ..., 0, 1, ...): n labels drawn evenly; None for an unconditional net."""
        if self.num_classes == 0:
            return None
        return torch.arange(n, device=self.output.weight.device) % self.num_classes

    def sample(self, n: int, generator: Optional[torch.Generator] = None, labels: Optional[Tensor] = None) -> Tensor:
        """n samples; a conditional net draws `labels`, by default balanced_labels(n), i.e. p(x) with p(c) uniform."""
        if labels is None:
            labels = self.balanced_labels(n)
        return self(self.noise(n, generator), labels)


class Discriminator(nn.Module):
    """x [N, data_dim] (and, when num_classes > 0, labels [N]) -> features [N, F]; the output layer `output`
    turns them into one logit.

    Fully connected (the paper's MNIST D): `layers` maxout layers of `units` x `pieces`, F = units. With
    conv_channels (and image_shape (C, H, W), C*H*W = data_dim): one 5x5 stride-2 convolution per entry, each
    followed by maxout over groups of `pieces` channels and dropout (fastgan.nn.MaxoutConv2d), halving H and W;
    F = conv_channels[-1] * H' * W'.
    """

    def __init__(self, data_dim: int = 784, units: int = 240, pieces: int = 5, layers: int = 2,
                 input_dropout: float = 0.2, hidden_dropout: float = 0.5, init_range: float = 0.005,
                 backend: str = "auto", num_classes: int = 0, conv_channels: Sequence[int] = (),
                 image_shape: Optional[Sequence[int]] = None):
        super().__init__()
        self.backend = backend
        self.input_dropout = input_dropout
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape) if conv_channels else None
        if conv_channels:
            _check_image_shape(image_shape, data_dim)
            if num_classes:
                raise ValueError("conditional nets use the fully connected D: the one-hot label joins a flat input")
            channels, (height, width) = [image_shape[0], *conv_channels], image_shape[1:]
            self.hidden = nn.ModuleList(
                MaxoutConv2d(c_in, c_out, pieces, 5, stride=2, padding=2, p=hidden_dropout, backend=backend)
                for c_in, c_out in zip(channels[:-1], channels[1:]))
            for _ in conv_channels:
                height, width = (height + 1) // 2, (width + 1) // 2
            features = conv_channels[-1] * height * width
        else:
            if layers < 1:
                raise ValueError(f"layers must be >= 1, got {layers}")
            # MaxoutLinear drops its *output*: dropout on the hidden layers' inputs is the previous layer's p.
            self.hidden = nn.ModuleList(
                MaxoutLinear(data_dim + num_classes if i == 0 else units, units, pieces, p=hidden_dropout,
                             backend=backend)
                for i in range(layers))
            features = units
        for layer in self.hidden:
            nn.init.uniform_(layer.weight, -init_range, init_range)
            nn.init.zeros_(layer.bias)
        self.output = nn.Linear(features, 1)
        _uniform_init(self.output, init_range)

    @property
    def dropout_layers(self) -> int:
        """How many dropout masks one pass draws: the input's and one per hidden layer."""
        return len(self.hidden) + 1

    def features(self, x: Tensor, labels: Optional[Tensor] = None, seeds: Optional[Sequence[int]] = None) -> Tensor:
        """D's last hidden layer [N, F]. seeds: one Philox key per dropout mask (dropout_layers of them), or
        None to draw each from torch's generator; the Trainer passes them, so torch.compile can trace D."""
        return self._layers(x, one_hot_labels(labels, self.num_classes, len(x), x), seeds)[-1]

    def layer_features(self, x: Tensor, labels: Optional[Tensor] = None) -> List[Tensor]:
        """Every hidden layer's output [N, F_i] (flattened), bottom first; features() is the last."""
        return self._layers(x, one_hot_labels(labels, self.num_classes, len(x), x), None)

    def _layers(self, x: Tensor, one_hot: Optional[Tensor], seeds: Optional[Sequence[int]]) -> List[Tensor]:
        if seeds is None:
            seeds = [None] * self.dropout_layers
        elif len(seeds) != self.dropout_layers:
            raise ValueError(f"seeds must hold {self.dropout_layers} ints (input + hidden layers), got {len(seeds)}")
        # Maxout with one piece is dropout alone, from the Philox kernels: 0.48 ms against F.dropout's 0.91 ms
        # on the D step's 200 x 784 input (one core), and the mask is regenerated, not stored, for backward.
        h = maxout_dropout(x, 1, self.input_dropout, self.training, seeds[0], backend=self.backend)
        if one_hot is not None:
            # Input dropout covers the pixels only: a dropped label bit would make D judge some rows unconditioned.
            # The concatenation copies [N, 794] (N = 200 in loss()): 0.23 ms against the first layer's 24.6 ms,
            # forward + backward, under 1% (benchmarks/bench_conditional.py, cpu backend, one thread of 2 shared
            # cores), so the labels do not go to the fused kernel as per-row biases instead.
            h = torch.cat([h, one_hot], 1)
        if self.image_shape is not None:
            h = h.reshape(-1, *self.image_shape)
        outputs = []
        for layer, seed in zip(self.hidden, seeds[1:]):
            h = layer(h, seed)
            outputs.append(h if self.image_shape is None else h.flatten(1))
        return outputs

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """D's logits [N] (D(x) = sigmoid(logit)); training fuses the output layer into the loss
        (GANLoss.linear_discriminator on features()), which never stores them."""
        return self.output(self.features(x, labels)).squeeze(-1)


def build_models(config: ModelConfig, pixel_means: Optional[Tensor] = None, backend: str = "auto",
                 seed: Optional[int] = None):
    """(Generator, Discriminator) for a ModelConfig; pixel_means [data_dim] sets G's output bias. With `seed`,
    the weights are drawn from a generator seeded with it, and torch's global RNG is left as it was."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_models(config, pixel_means, backend)
    generator = Generator(config.noise_dim, config.g_hidden, config.data_dim, config.g_init_range, pixel_means,
                          config.num_classes, config.g_conv_channels, config.image_shape, backend)
    discriminator = Discriminator(config.data_dim, config.d_units, config.d_pieces, config.d_layers,
                                  config.d_input_dropout, config.d_hidden_dropout, config.d_init_range, backend,
                                  config.num_classes, config.d_conv_channels, config.image_shape)
    return generator, discriminator
