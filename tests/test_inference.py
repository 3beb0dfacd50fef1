"""Learned approximate inference (section 7, extension 2): an encoder E(x) ~ z fitted to a fixed generator."""
import pytest
import torch

from fastgan.paper.inference import Encoder, fit_encoder, latent_error
from fastgan.paper.models import ModelConfig, build_models

pytestmark = pytest.mark.usefixtures("one_thread")  # small nets: see conftest.py

TINY = ModelConfig(data_dim=16, noise_dim=4, g_hidden=(32,), d_units=8, d_pieces=3, g_init_range=0.5)


def test_latent_error_drops_during_training():
    torch.manual_seed(0)
    g, _ = build_models(TINY, backend="torch")
    encoder = Encoder(16, 4, hidden=(64,))
    errors = [latent_error(encoder, g, seed=100)]  # pairs apart from training's (seeds 0, 1, 2)
    for seed in range(3):
        fit_encoder(encoder, g, steps=100, lr=3e-3, seed=seed, progress=False)
        errors.append(latent_error(encoder, g, seed=100))
    # z ~ N(0, 1): an untrained encoder's outputs sit near 0, so its error is near 1, the prior's variance. A G of
    # 4 -> 32 ReLU -> 16 is close to invertible. Measured, models seeded 0, 1, 2: 1.01 -> 0.33 -> 0.14 -> 0.10,
    # 1.03 -> 0.33 -> 0.14 -> 0.10, 0.98 -> 0.30 -> 0.15 -> 0.09 (after 100, 200, 300 steps).
    assert 0.8 < errors[0] < 1.2
    assert errors[1] < 0.5 * errors[0] and errors[3] < 0.5 * errors[1], errors


def test_conditional_generator_pairs_carry_labels():
    torch.manual_seed(0)
    g, _ = build_models(ModelConfig(data_dim=16, noise_dim=4, g_hidden=(32,), num_classes=3), backend="torch")
    encoder = fit_encoder(Encoder(16, 4, hidden=(32,)), g, steps=5, progress=False)
    assert latent_error(encoder, g, n=10) > 0  # G was called with labels: no "labels are required" error


def test_bad_input_shapes():
    g, _ = build_models(TINY, backend="torch")
    encoder = Encoder(16, 4, hidden=(8,))
    with pytest.raises(ValueError, match=r"x must be \[N, 16\]"):
        encoder(torch.rand(3, 15))
    with pytest.raises(ValueError, match=r"x must be \[N, 16\]"):
        encoder(torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        encoder([[0.0] * 16])
    with pytest.raises(ValueError, match="the encoder maps 784 -> 100 but the generator maps 4 -> 16"):
        fit_encoder(Encoder(), g, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        fit_encoder(encoder, g, steps=0, progress=False)


def test_cli_reconstruct(tmp_path, capsys):
    from PIL import Image

    from fastgan.paper.cli import main
    from fastgan.paper import checkpoint

    out = tmp_path / "run"
    assert main(["train", "--steps", "1", "--backend", "torch", "--out", str(out), "--parzen-samples", "20",
                 "--no-progress"]) == 0
    assert main(["reconstruct", str(out / "checkpoint.pt"), "--steps", "3", "--rows", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "reconstruction error |G(E(x)) - x|^2 per pixel on the 714 test digits" in printed
    with Image.open(out / "reconstructions.png") as image:  # 2 rows of 6 (digit, reconstruction) pairs
        assert image.size == (2 * (12 * 30 + 2), 2 * (2 * 30 + 2))
    saved, encoder = checkpoint.load_encoder(out / "encoder.pt")
    assert saved["steps"] == 3 and saved["checkpoint_step"] == 1 and encoder(torch.rand(2, 784)).shape == (2, 100)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
