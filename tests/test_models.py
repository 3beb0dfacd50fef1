"""The paper's MNIST nets: shapes, parameter counts, initial ranges, fused path = reference path."""
import dataclasses

import pytest
import torch

from fastgan import backends
from fastgan.paper.models import Discriminator, Generator, ModelConfig, build_models
from fastgan.nn import MaxoutConv2d
from fastgan.ops import discriminator_loss, generator_loss

from conftest import d_loss, g_loss

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
    loss, stats = d_loss(d, real, fake)
    torch.testing.assert_close(loss, discriminator_loss(d(real), d(fake), backend="torch"))
    for saturating in (False, True):
        torch.testing.assert_close(g_loss(d, fake, saturating=saturating),
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
        loss, _ = d_loss(d, real, fake)
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
    config = ModelConfig(g_hidden=(8, 8), d_units=4, g_conv_channels=(6, 3))
    assert ModelConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in config.to_dict().items() if k not in ("image_shape", "d_conv_channels", "g_conv_channels")}
    assert ModelConfig.from_dict(old) == ModelConfig(g_hidden=(8, 8), d_units=4)  # a checkpoint from before them


def test_figures_2_and_3_png(tmp_path):
    from PIL import Image

    from fastgan.paper.viz import interpolation_figure, nearest_neighbours, samples_figure

    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(g_hidden=(8,)), backend="torch")
    train = torch.rand(20, 784)
    assert torch.equal(nearest_neighbours(train[[3, 7]] + 0.01, train), torch.tensor([3, 7]))
    with Image.open(samples_figure(g.sample(12), train, tmp_path / "fig2.png", cols=3, scale=1)) as image:
        assert image.size == (4 * 30 + 2 + 4, 4 * 30 + 2)  # 3 samples + the nearest digit, 4 rows, a yellow bar
        assert image.getpixel((3 * 30 + 2, 5)) == (255, 215, 0)
    with Image.open(interpolation_figure(g, tmp_path / "fig3.png", rows=2, steps=5, scale=1)) as image:
        assert image.size == (5 * 30 + 2, 2 * 30 + 2)


# --- the convolutional discriminator ---------------------------------------------------------------------------


def test_maxout_conv2d_is_a_conv2d_then_channel_maxout():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4 * 2, 5, stride=2, padding=2)
    layer = MaxoutConv2d(3, 4, 2, 5, stride=2, padding=2, p=0.5, backend="torch")
    layer.load_state_dict(conv.state_dict())  # nn.Conv2d's parameters, unchanged
    x = torch.randn(3, 3, 9, 7)
    layer.eval()  # no dropout: plain maxout over channel pairs
    assert torch.equal(layer(x), conv(x).unflatten(1, (4, 2)).amax(2))
    layer.train()
    y = layer(x, seed=5)
    kept = y != 0
    assert 0.3 < kept.float().mean() < 0.7  # p = 0.5 on 3 * 4 * 5 * 4 = 240 units
    torch.testing.assert_close(y[kept], 2 * conv(x).unflatten(1, (4, 2)).amax(2)[kept])


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpu", marks=needs_cpu_kernels)])
def test_conv_discriminator_shapes_and_gradients(backend):
    torch.manual_seed(0)
    config = ModelConfig(data_dim=3 * 9 * 7, image_shape=(3, 9, 7), d_conv_channels=(4, 6), d_pieces=2)
    _, d = build_models(config, backend=backend)
    assert [layer.weight.shape for layer in d.hidden] == [(8, 3, 5, 5), (12, 4, 5, 5)]
    x = torch.rand(5, 3 * 9 * 7)
    assert d.features(x).shape == (5, 6 * 3 * 2)  # 9 x 7 -> 5 x 4 -> 3 x 2
    loss, _ = d_loss(d, x, torch.rand(5, 3 * 9 * 7), seeds=[1, 2, 3])
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())


def test_conv_discriminator_cpu_kernels_match_reference():
    if backends.why_not("cpu", "cpu") is not None:
        pytest.skip(f"cpu backend: {backends.why_not('cpu', 'cpu')}")
    config = ModelConfig(data_dim=2 * 8 * 8, image_shape=(2, 8, 8), d_conv_channels=(3, 5), d_pieces=3)
    nets = {}
    for backend in ("cpu", "torch"):
        torch.manual_seed(0)
        nets[backend] = build_models(config, backend=backend)[1].double()
    x = torch.rand(4, 128, dtype=torch.float64)
    losses = {b: d_loss(d, x, x.flip(0), seeds=[7, 8, 9])[0] for b, d in nets.items()}
    torch.testing.assert_close(losses["cpu"], losses["torch"])
    for d in nets.values():
        d.zero_grad()
    for loss in losses.values():
        loss.backward()
    for (name, p), q in zip(nets["cpu"].named_parameters(), nets["torch"].parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    # what G learns from: the gradient of its loss with respect to the images, through dropout and both layers
    grads = {b: torch.autograd.grad(g_loss(d, x.requires_grad_(), seeds=[7, 8, 9]), x)[0]
             for b, d in nets.items()}
    assert grads["torch"].abs().sum() > 0
    torch.testing.assert_close(grads["cpu"], grads["torch"])


def test_conv_discriminator_bad_config():
    with pytest.raises(ValueError, match="image_shape must be"):
        build_models(ModelConfig(data_dim=784, image_shape=(1, 27, 28), d_conv_channels=(4,)))
    with pytest.raises(ValueError, match="conditional nets use the fully connected D"):
        build_models(ModelConfig(d_conv_channels=(4,), num_classes=10))


# --- the convolutional generator -------------------------------------------------------------------------------

CONV_G = ModelConfig(data_dim=2 * 8 * 12, image_shape=(2, 8, 12), noise_dim=5, g_hidden=(7,), g_conv_channels=(4, 3))


def test_conv_generator_shapes_pixel_bias_and_gradients():
    torch.manual_seed(0)
    means = torch.rand(192)
    g, _ = build_models(CONV_G, means, backend="torch")
    # 5 -> 7 -> 4 maps of 2 x 3 -> 3 maps of 4 x 6 -> 2 maps of 8 x 12, each transposed convolution doubling
    assert [layer.weight.shape for layer in g.modules() if isinstance(layer, torch.nn.ConvTranspose2d)] == [
        (4, 3, 5, 5), (3, 2, 5, 5)]
    assert g.hidden[2].weight.shape == (4 * 2 * 3, 7) and g.output.bias is None
    torch.testing.assert_close(torch.sigmoid(g.pixel_bias), means)
    for layer in [*g.hidden[0:4:2], g.hidden[5], g.output]:
        assert 0.04 < layer.weight.abs().max() <= 0.05
    x = g.sample(6)
    assert x.shape == (6, 192) and 0 < x.min() and x.max() < 1
    # The untrained generator's mean image is close to the data's: the bias dominates the U(+-0.05) weights.
    assert (x.mean(0) - means).abs().max() < 0.05
    x.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_conditional_conv_generator():
    torch.manual_seed(0)
    g, _ = build_models(dataclasses.replace(CONV_G, num_classes=3), backend="torch")
    assert g.hidden[0].in_features == 5 + 3  # the one-hot label joins z at the bottom layer
    assert g.sample(4).shape == (4, 192)


def test_conv_generator_bad_config():
    with pytest.raises(ValueError, match="multiples of 2\\^len\\(g_conv_channels\\)=8"):
        build_models(ModelConfig(g_conv_channels=(8, 4, 2)))  # 28 x 28 halves twice, not three times
    with pytest.raises(ValueError, match="image_shape must be"):
        build_models(ModelConfig(data_dim=780, g_conv_channels=(4,)))
    with pytest.raises(ValueError, match="g_conv_channels must all be >= 1"):
        build_models(ModelConfig(g_conv_channels=(4, 0)))
