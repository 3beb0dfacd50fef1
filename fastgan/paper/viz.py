"""The paper's MNIST figures as PNG files, drawn with pillow.

Figure 2: a grid of samples whose rightmost column (behind a yellow bar) is the nearest training example
of the sample beside it, which shows the model has not memorised the training set. Figure 3: digits from
linear paths between two points in z space. And pairs of digits and their reconstructions G(E(x)) (inference.py).
"""
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fastgan.nn import eval_mode

__all__ = ["FIGURE_SEED", "generator_samples_figure", "image_grid", "interpolation_figure", "nearest_neighbours",
           "reconstruction_figure", "samples_figure"]

_SEPARATOR_RGB = (255, 215, 0)


def _as_images(images: Tensor, shape: Sequence[int]) -> np.ndarray:
    """[N, H, W, 3] uint8 from images [N, C*H*W] or [N, C, H, W] with C = 1 (grey) or 3 (RGB)."""
    channels, height, width = shape
    if channels not in (1, 3) or images.reshape(len(images), -1).shape[1] != channels * height * width:
        raise ValueError(f"images must be [N, {channels * height * width}] or [N, {channels}, {height}, {width}] "
                         f"with 1 or 3 channels, got {tuple(images.shape)}")
    images = images.reshape(-1, channels, height, width).expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
    return (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def image_grid(images: Tensor, cols: int, shape: Sequence[int] = (1, 28, 28), pad: int = 2, scale: int = 2,
               separator_before_col: Optional[int] = None) -> Image.Image:
    """Tile images ([N, C*H*W] or [N, C, H, W] for shape (C, H, W), values in [0, 1]) row by row into an RGB
    image.

    separator_before_col draws a yellow bar in front of that column (Figure 2's nearest-neighbour column).
    """
    if cols < 1 or len(images) == 0:
        raise ValueError(f"need cols >= 1 and at least one image, got cols={cols} and {len(images)} images")
    tiles = _as_images(images, shape)
    rows = -(-len(tiles) // cols)
    side = max(shape[1:])
    cell = side + pad
    gap = 2 * pad if separator_before_col is not None else 0
    canvas = np.full((rows * cell + pad, cols * cell + pad + gap, 3), 0, dtype=np.uint8)
    if separator_before_col is not None:
        x = separator_before_col * cell + pad // 2
        canvas[:, x:x + gap + pad // 2] = _SEPARATOR_RGB
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        x = pad + c * cell + (gap if separator_before_col is not None and c >= separator_before_col else 0)
        y = pad + r * cell
        canvas[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    image = Image.fromarray(canvas, "RGB")
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale != 1 else image


def nearest_neighbours(queries: Tensor, references: Tensor, batch_size: int = 1024) -> Tensor:
    """Index into references of each query's nearest neighbour in Euclidean distance."""
    queries, references = queries.reshape(len(queries), -1).float(), references.reshape(len(references), -1).float()
    return torch.cat([torch.cdist(queries[i:i + batch_size], references).argmin(1)
                      for i in range(0, len(queries), batch_size)])


def samples_figure(samples: Tensor, train_images: Tensor, path: Union[str, Path], cols: int = 6,
                   scale: int = 2, image_shape: Sequence[int] = (1, 28, 28)) -> Path:
    """Figure 2: rows of `cols` samples, then the training digit nearest to each row's last sample."""
    if cols < 1 or len(samples) < cols:
        raise ValueError(f"need cols >= 1 and at least cols samples, got cols={cols} and {len(samples)} samples")
    rows = len(samples) // cols
    samples = samples[:rows * cols].reshape(rows, cols, -1)
    nearest = train_images[nearest_neighbours(samples[:, -1], train_images)].reshape(rows, 1, -1)
    tiles = torch.cat([samples.float().cpu(), nearest.float().cpu()], dim=1).reshape(rows * (cols + 1), -1)
    path = Path(path)
    image_grid(tiles, cols + 1, image_shape, scale=scale, separator_before_col=cols).save(path)
    return path


@torch.no_grad()
def interpolation_figure(generator, path: Union[str, Path], rows: int = 6, steps: int = 10, seed: int = 0,
                         scale: int = 2, image_shape: Sequence[int] = (1, 28, 28)) -> Path:
    """Figure 3: each row decodes z_0 + t (z_1 - z_0) for t from 0 to 1 in `steps` steps (a conditional
    generator's row r with the class r mod num_classes)."""
    if rows < 1 or steps < 2:
        raise ValueError(f"need rows >= 1 and steps >= 2, got rows={rows}, steps={steps}")
    rng = torch.Generator().manual_seed(seed)
    ends = generator.noise(2 * rows, generator=rng).reshape(rows, 2, -1)
    t = torch.linspace(0, 1, steps, dtype=ends.dtype, device=ends.device).reshape(1, steps, 1)
    z = ends[:, :1] + t * (ends[:, 1:] - ends[:, :1])
    labels = generator.balanced_labels(rows)
    with eval_mode(generator):
        images = generator(z.reshape(rows * steps, -1), None if labels is None else labels.repeat_interleave(steps))
    path = Path(path)
    image_grid(images, steps, image_shape, scale=scale).save(path)
    return path


def reconstruction_figure(images: Tensor, reconstructions: Tensor, path: Union[str, Path], pairs_per_row: int = 6,
                          scale: int = 2, image_shape: Sequence[int] = (1, 28, 28)) -> Path:
    """Each digit followed by its reconstruction, `pairs_per_row` pairs a row."""
    if images.shape != reconstructions.shape:
        raise ValueError(f"images and reconstructions must have one shape, got {tuple(images.shape)} "
                         f"and {tuple(reconstructions.shape)}")
    tiles = torch.stack([images.float().cpu(), reconstructions.float().cpu()], 1).flatten(0, 1)
    path = Path(path)
    image_grid(tiles, 2 * pairs_per_row, image_shape, scale=scale).save(path)
    return path


FIGURE_SEED = 4321  # the noise of the pictures, apart from training's streams


def generator_samples_figure(generator, train_images: Tensor, path: Union[str, Path], rows: int = 10, cols: int = 6,
                             seed: int = FIGURE_SEED, label: Optional[int] = None,
                             image_shape: Sequence[int] = (1, 28, 28)) -> Path:
    """Figure 2 from G in eval mode: rows x cols samples, or a conditional G's one row of cols per class, or
    all of class `label`; each row's nearest training digit on the right."""
    if label is not None:
        labels = torch.full((rows * cols,), label)
    elif generator.num_classes:
        labels = torch.arange(generator.num_classes).repeat_interleave(cols)
    else:
        labels = None
    with torch.no_grad(), eval_mode(generator):
        samples = generator.sample(rows * cols if labels is None else len(labels),
                                   generator=torch.Generator().manual_seed(seed), labels=labels)
    return samples_figure(samples, train_images, path, cols=cols, image_shape=image_shape)
