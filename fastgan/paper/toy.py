"""The paper's 1-D picture (Figure 1) and its theory (section 4), checked by quadrature.

Data p_data = N(1, 0.5^2); the generator is x = G(z) = a z + b with z ~ N(0, 1), so p_g = N(b, a^2) is known
exactly and D can be held against Proposition 1's optimum D*(x) = p_data(x) / (p_data(x) + p_g(x)).
Theorem 1: the virtual training criterion C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g), which is
minimal (-log 4) exactly when p_g = p_data. All integrals are trapezoid sums on a fine grid (numpy only).
"""
import math
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

from fastgan.ops import discriminator_loss, generator_loss

__all__ = ["DATA_MEAN", "DATA_STD", "GRID", "QuadraticDiscriminator", "discriminator_on_grid", "figure1",
           "fit_discriminator", "integrate", "jensen_shannon", "make_discriminator", "normal_pdf",
           "optimal_discriminator", "value", "virtual_training_criterion"]

DATA_MEAN, DATA_STD = 1.0, 0.5
GRID = np.linspace(-6.0, 6.0, 4001)  # holds all but ~1e-9 of every density used here


def normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def integrate(values: np.ndarray, x: np.ndarray = GRID) -> float:
    """Trapezoid rule (numpy's trapz moved between versions, so it is spelt out)."""
    return float(np.sum((values[1:] + values[:-1]) * np.diff(x)) / 2)


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """Proposition 1: D*_G(x) = p_data(x) / (p_data(x) + p_g(x)) (1/2 where both vanish)."""
    total = p_data + p_g
    return np.divide(p_data, total, out=np.full_like(total, 0.5), where=total > 0)


def _xlogy(x, y):
    return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def value(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray = GRID) -> float:
    """V(D, G) = E_{p_data} log D(x) + E_{p_g} log(1 - D(x)) (eq. 1, written over x as in eq. 3)."""
    return integrate(_xlogy(p_data, d) + _xlogy(p_g, 1 - d), x)


def jensen_shannon(p: np.ndarray, q: np.ndarray, x: np.ndarray = GRID) -> float:
    """JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2, in nats."""
    m = (p + q) / 2
    return 0.5 * integrate(_xlogy(p, p) - _xlogy(p, m), x) + 0.5 * integrate(_xlogy(q, q) - _xlogy(q, m), x)


def virtual_training_criterion(p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray = GRID) -> float:
    """C(G) = V(D*_G, G), the left side of Theorem 1."""
    return value(optimal_discriminator(p_data, p_g), p_data, p_g, x)


def make_discriminator(hidden: int = 32, dtype=torch.float64) -> nn.Module:
    """A small tanh MLP x -> logit; the input is standardised to the grid's scale for easy fitting."""
    return nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 1)).to(dtype)


class QuadraticDiscriminator(nn.Module):
    """logit = w1 x + w2 x^2 + c: logistic regression whose family holds D* exactly for two Gaussians
    (log p_data / p_g is quadratic in x), so training it to optimum must reach D* to optimiser precision."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.linear = nn.Linear(2, 1).to(dtype)

    def forward(self, x):
        return self.linear(torch.cat([x, x * x], dim=-1))


def _logits(d: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return d((x / 3.0).unsqueeze(-1)).squeeze(-1)


def discriminator_on_grid(d: nn.Module, x: np.ndarray = GRID) -> np.ndarray:
    with torch.no_grad():
        w = next(d.parameters())
        return torch.sigmoid(_logits(d, torch.as_tensor(x, dtype=w.dtype))).numpy()


def fit_discriminator(p_data: np.ndarray, p_g: np.ndarray, d: nn.Module = None, x: np.ndarray = GRID,
                      iterations: int = 300) -> nn.Module:
    """Train D to optimum on the exact V(D, G) (the integrals by quadrature, no sampling noise), by L-BFGS."""
    d = d if d is not None else make_discriminator()
    dtype = next(d.parameters()).dtype
    xs = torch.as_tensor(x, dtype=dtype)
    weights = torch.as_tensor(np.gradient(x), dtype=dtype)  # trapezoid weights up to the end points
    pd, pg = torch.as_tensor(p_data, dtype=dtype), torch.as_tensor(p_g, dtype=dtype)
    optimizer = torch.optim.LBFGS(d.parameters(), lr=1.0, max_iter=iterations, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logit = _logits(d, xs)
        # -V(D, G) = -E_data log sigmoid(l) - E_g log(1 - sigmoid(l)), in the overflow-free softplus form
        loss = (weights * (pd * nn.functional.softplus(-logit) + pg * nn.functional.softplus(logit))).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return d


def _max_error_where_mass(d_values, p_data, p_g, fraction=0.01):
    total = p_data + p_g
    mask = total > fraction * total.max()
    return float(np.abs(d_values - optimal_discriminator(p_data, p_g))[mask].max())


# --- Figure 1 -------------------------------------------------------------------------------------------------


def _panel(label, title, generator_params, d):
    a, b = (float(v) for v in generator_params)
    p_data, p_g = normal_pdf(GRID, DATA_MEAN, DATA_STD), normal_pdf(GRID, b, abs(a))
    d_values = discriminator_on_grid(d)
    return dict(label=label, title=title, a=a, b=b, p_data=p_data, p_g=p_g, d=d_values,
                d_star=optimal_discriminator(p_data, p_g), jsd=jensen_shannon(p_data, p_g),
                max_d_error=_max_error_where_mass(d_values, p_data, p_g))


def _d_steps(d, d_opt, g_params, steps, batch, backend):
    for _ in range(steps):
        real = torch.randn(batch, dtype=torch.float64) * DATA_STD + DATA_MEAN
        with torch.no_grad():
            fake = torch.randn(batch, dtype=torch.float64) * g_params[0] + g_params[1]
        loss = discriminator_loss(_logits(d, real), _logits(d, fake), backend=backend)
        d_opt.zero_grad()
        loss.backward()
        d_opt.step()


def figure1(path: Union[str, Path], seed: int = 0, backend: str = "auto", batch: int = 512, g_updates: int = 600,
            d_steps: int = 500):
    """Run the 1-D game with Algorithm 1 (k = 5) and draw Figure 1's four moments to a PNG; returns the panels.

    (a) the initial pair, D partly trained; (b) D trained to convergence for that G: D ~ D*; (c) after some
    generator updates p_g has moved toward p_data; (d) after many, p_g ~ p_data and D ~ 1/2 everywhere.
    """
    threads = torch.get_num_threads()
    # Tensors of a few hundred numbers: extra threads only add synchronisation (19 s vs 0.8 s measured on
    # a busy 2-core machine), so the game runs on one.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # the game seeds its own stream; the caller's RNG is left as it was
            panels = _play(seed, backend, batch, g_updates, d_steps)
    finally:
        torch.set_num_threads(threads)
    _draw(panels, Path(path))
    return panels


def _play(seed, backend, batch, g_updates, d_steps):
    torch.manual_seed(seed)
    g_params = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)  # G(z) = a z + b
    d = make_discriminator()
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    g_opt = torch.optim.Adam([g_params], lr=2e-2)
    panels = []
    _d_steps(d, d_opt, g_params, 20, batch, backend)
    panels.append(_panel("a", "initial G, D partly trained", g_params.detach(), d))
    _d_steps(d, d_opt, g_params, d_steps, batch, backend)
    panels.append(_panel("b", "D trained for this G", g_params.detach(), d))
    early = max(g_updates // 15, 1)
    for iteration in range(1, g_updates + 1):
        _d_steps(d, d_opt, g_params, 5, batch, backend)
        fake = torch.randn(batch, dtype=torch.float64) * g_params[0] + g_params[1]
        g_loss = generator_loss(_logits(d, fake), backend=backend)  # non-saturating: -log D(G(z))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        if iteration == early:
            panels.append(_panel("c", f"after {early} updates of G", g_params.detach(), d))
    panels.append(_panel("d", f"after {g_updates} updates of G", g_params.detach(), d))
    return panels


def _draw(panels, path, width=360, height=260, margin=30):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width * len(panels), height + 40), "white")
    draw = ImageDraw.Draw(image)
    peak = max(max(p["p_data"].max(), p["p_g"].max()) for p in panels)
    xs = GRID

    def to_pixels(offset, ys, scale):
        px = offset + margin + (xs - xs[0]) / (xs[-1] - xs[0]) * (width - 2 * margin)
        py = height - margin - ys / scale * (height - 2 * margin)
        return list(zip(px.tolist(), py.tolist()))

    for i, panel in enumerate(panels):
        offset = i * width
        draw.rectangle([offset + margin, margin, offset + width - margin, height - margin], outline="grey")
        draw.text((offset + margin, 5), f"({panel['label']}) {panel['title']}", fill="black")
        draw.text((offset + margin, height - margin + 4),
                  f"JSD {panel['jsd']:.3f}  max|D-D*| {panel['max_d_error']:.2f}", fill="black")
        # densities share one scale; D and D* use [0, 1] of the same box (1 at the top)
        draw.line(to_pixels(offset, panel["p_data"], peak), fill="black", width=2)
        draw.line(to_pixels(offset, panel["p_g"], peak), fill=(0, 150, 0), width=2)
        draw.line(to_pixels(offset, panel["d_star"], 1.0), fill=(220, 0, 0), width=1)
        points = to_pixels(offset, panel["d"], 1.0)
        for start in range(0, len(points) - 1, 80):  # dashed, as the paper's D
            draw.line(points[start:start + 40], fill=(0, 0, 220), width=2)
    legend = "black: p_data   green: p_g   blue dashed: D (trained)   red: D* = p_data/(p_data+p_g)   x in [-6, 6]"
    draw.text((margin, height + 15), legend, fill="black")
    image.save(path)
