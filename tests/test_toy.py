"""Section 4's theory on 1-D densities, by quadrature: Proposition 1 and Theorem 1."""
import math

import numpy as np
import pytest
import torch

from fastgan.paper import toy

X = np.linspace(-6.0, 6.0, 1201)
P_DATA = toy.normal_pdf(X, 1.0, 0.5)
GENERATORS = [(-1.0, 1.0), (0.5, 0.7), (1.0, 0.5)]  # (mean, std) of p_g; the last is p_g = p_data


def test_densities_integrate_to_one():
    for mean, std in GENERATORS:
        # the grid misses the tails beyond 5 standard deviations: 3e-7
        assert toy.integrate(toy.normal_pdf(X, mean, std), X) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mean,std", GENERATORS)
def test_theorem1_criterion_is_minus_log4_plus_2jsd(mean, std):
    # C(G) = V(D*_G, G) and JSD are computed independently; the trapezoid rule on 1201 points is exact to ~1e-7.
    p_g = toy.normal_pdf(X, mean, std)
    criterion = toy.virtual_training_criterion(P_DATA, p_g, X)
    assert criterion == pytest.approx(-math.log(4) + 2 * toy.jensen_shannon(P_DATA, p_g, X), abs=1e-6)
    assert criterion >= -math.log(4) - 1e-9  # the global minimum, reached only at p_g = p_data


def test_theorem1_minimum_at_p_g_equal_p_data():
    assert toy.virtual_training_criterion(P_DATA, P_DATA, X) == pytest.approx(-math.log(4), abs=1e-9)
    assert toy.jensen_shannon(P_DATA, P_DATA, X) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("mean,std", GENERATORS[:2])
def test_proposition1_trained_discriminator_reaches_d_star(mean, std):
    # A D whose family contains D* (quadratic logit), trained to optimum on the exact V(D, G):
    # it must match D* = p_data / (p_data + p_g) to 1e-4 wherever the densities have mass,
    # and its value must equal C(G) to 1e-7.
    torch.manual_seed(0)
    p_g = toy.normal_pdf(X, mean, std)
    d = toy.fit_discriminator(P_DATA, p_g, toy.QuadraticDiscriminator(), x=X, iterations=100)
    d_values = toy.discriminator_on_grid(d, X)
    mass = (P_DATA + p_g) > 0.01 * (P_DATA + p_g).max()
    assert np.abs(d_values - toy.optimal_discriminator(P_DATA, p_g))[mass].max() < 1e-4
    assert toy.value(d_values, P_DATA, p_g, X) == pytest.approx(toy.virtual_training_criterion(P_DATA, p_g, X),
                                                                abs=1e-7)


def test_proposition1_generic_mlp_discriminator_approaches_d_star():
    # A generic tanh MLP (the one Figure 1 uses), briefly trained: within 0.1 of D* where there is mass.
    torch.manual_seed(0)
    p_g = toy.normal_pdf(X[::2], -1.0, 1.0)
    p_data = toy.normal_pdf(X[::2], 1.0, 0.5)
    d = toy.fit_discriminator(p_data, p_g, toy.make_discriminator(16), x=X[::2], iterations=50)
    mass = (p_data + p_g) > 0.01 * (p_data + p_g).max()
    error = np.abs(toy.discriminator_on_grid(d, X[::2]) - toy.optimal_discriminator(p_data, p_g))[mass].max()
    assert error < 0.1


def test_normal_pdf_rejects_bad_std():
    with pytest.raises(ValueError, match="std"):
        toy.normal_pdf(X, 0.0, 0.0)


def test_figure1_png(tmp_path):
    from PIL import Image

    panels = toy.figure1(tmp_path / "toy.png", backend="torch", batch=64, g_updates=15, d_steps=20)
    assert [p["label"] for p in panels] == ["a", "b", "c", "d"]
    assert panels[3]["jsd"] < panels[0]["jsd"]  # G has moved toward the data
    with Image.open(tmp_path / "toy.png") as image:
        assert image.size == (4 * 360, 300)
