"""The paper's MNIST nets: shapes, parameter counts, initial ranges, fused path = reference path."""
import pytest
import torch

from fastgan import backends
from fastgan.models import Discriminator, Generator, ModelConfig, build_models
from fastgan.ops import discriminator_loss, generator_loss

needs_cpu_kernels = pytest.mark.skipif(backends.why_not("cpu", "cpu") is not None,
                                       reason=f"cpu backend: {backends.why_not('cpu', 'cpu')}")


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_shapes_and_parameter_counts():
    torch.manual_seed(0)
    means = torch.rand(784) * 0.5
    g, d = build_models(ModelConfig(), means, backend="torch")
    assert n_params(g) == (100 * 1200 + 1200) + (1200 * 1200 + 1200) + (1200 * 784 + 784)
    assert n_params(d) == (784 * 1200 + 1200) + (240 * 1200 + 1200) + (240 + 1)  # 240 units x 5 pieces
    x = g.sample(7)
    assert x.shape == (7, 784) and 0 < x.min() and x.max() < 1
    assert d.features(x).shape == (7, 240) and d(x).shape == (7,)


def test_initial_ranges_and_output_bias_from_marginals():
    torch.manual_seed(0)
    means = torch.rand(784)
    means[:10] = 0.0  # always-black pixels: the clipped logit stays finite
    g, d = build_models(ModelConfig(), means, backend="torch")
    for linear in [*g.hidden[::2], g.output]:
        assert linear.weight.abs().max() <= 0.05 and linear.weight.abs().max() > 0.04
    for layer in [*d.hidden, d.output]:
        assert layer.weight.abs().max() <= 0.005 and layer.weight.abs().max() > 0.004
        assert not layer.bias.any()
    assert torch.isfinite(g.output.bias).all()
    torch.testing.assert_close(torch.sigmoid(g.output.bias[10:]), means[10:].clamp(1e-7, 1 - 1e-7))
    # The untrained generator's mean image is close to the data's: the bias dominates the U(+-0.05) weights.
    assert (g.sample(500).mean(0) - means).abs().mean() < 0.1


def test_linear_loss_equals_loss_on_logits():
    torch.manual_seed(0)
    _, d = build_models(ModelConfig(), backend="torch")
    d.eval()  # no dropout, so both paths see the same features
    real, fake = torch.rand(5, 784), torch.rand(6, 784)
    d_loss, stats = d.loss(real, fake)
    torch.testing.assert_close(d_loss, discriminator_loss(d(real), d(fake), backend="torch"))
    for saturating in (False, True):
        torch.testing.assert_close(d.generator_loss(fake, saturating=saturating),
                                   generator_loss(d(fake), saturating=saturating, backend="torch"))
    assert 0 < stats.d_real < 1 and 0 < stats.d_fake < 1


@needs_cpu_kernels
def test_fused_path_equals_reference_path_at_same_seed():
    torch.manual_seed(0)
    config = ModelConfig()
    _, reference = build_models(config, backend="torch")
    _, fused = build_models(config, backend="cpu")
    fused.load_state_dict(reference.state_dict())
    real, fake = torch.rand(9, 784), torch.rand(9, 784)
    results = []
    for d in (reference, fused):
        torch.manual_seed(1)  # the same dropout masks (input dropout and both maxout layers)
        loss, _ = d.loss(real, fake)
        grads = torch.autograd.grad(loss, list(d.parameters()))
        results.append((loss, grads))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-6, rtol=1e-5)
    for fused_grad, reference_grad in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(fused_grad, reference_grad, atol=1e-6, rtol=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pixel_means"):
        Generator(pixel_means=torch.zeros(10))
    with pytest.raises(ValueError, match="layers"):
        Discriminator(layers=0)


def test_model_config_round_trip():
    config = ModelConfig(g_hidden=(8, 8), d_units=4)
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_figures_2_and_3_png(tmp_path):
    from PIL import Image

    from fastgan.viz import interpolation_figure, nearest_neighbours, samples_figure

    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(g_hidden=(8,)), backend="torch")
    train = torch.rand(20, 784)
    assert torch.equal(nearest_neighbours(train[[3, 7]] + 0.01, train), torch.tensor([3, 7]))
    with Image.open(samples_figure(g.sample(12), train, tmp_path / "fig2.png", cols=3, scale=1)) as image:
        assert image.size == (4 * 30 + 2 + 4, 4 * 30 + 2)  # 3 samples + the nearest digit, 4 rows, a yellow bar
        assert image.getpixel((3 * 30 + 2, 5)) == (255, 215, 0)
    with Image.open(interpolation_figure(g, tmp_path / "fig3.png", rows=2, steps=5, scale=1)) as image:
        assert image.size == (5 * 30 + 2, 2 * 30 + 2)
