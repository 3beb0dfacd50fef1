"""A training run in its directory: checkpoint.pt, metrics.jsonl, samples.png and results.json.

The run's settings come from a preset, or when resuming from its own checkpoint; command-line overrides
apply on top. It reports the Parzen log-likelihood of the test digits before training (a new run) and after.
"""
import dataclasses
import json
from pathlib import Path
from typing import Optional

from .data import MNIST_CLASSES
from .evaluate import generator_log_likelihood
from .models import ModelConfig, build_models
from .train import CHECKPOINT_NAME, PRESETS, TrainConfig, Trainer
from .viz import generator_samples_figure

__all__ = ["RESULTS_NAME", "settings", "train_run"]

RESULTS_NAME = "results.json"


def settings(preset: str, resumed: Optional[tuple], conditional: bool, overrides: dict):
    """(ModelConfig, TrainConfig) of a new run of `preset`, or of a resumed run (`resumed`: its checkpoint's
    configs, checkpoint.configs), with the TrainConfig fields in `overrides` replaced."""
    if resumed is not None:
        model_config, train_config = resumed
    else:
        model_config, train_config = PRESETS[preset]
        if conditional:
            model_config = dataclasses.replace(model_config, num_classes=MNIST_CLASSES)
    return model_config, dataclasses.replace(train_config, **overrides)


def _result_line(result: dict) -> str:
    return (f"Parzen log-likelihood {result['mean']:.1f} \u00b1 {result['se']:.1f} (sigma = {result['sigma']:.4g}; "
            f"{result['n_test']} test points, {result['n_samples']} samples)")


def train_run(out: Path, preset: str, model_config: ModelConfig, train_config: TrainConfig, splits,
              data_source, state: Optional[dict] = None, backend: str = "auto", compile: bool = False,
              steps: Optional[int] = None, minutes: Optional[float] = None, progress: bool = True) -> str:
    """Trains (or resumes, from checkpoint `state`) the run in `out`; returns "done" or "interrupted".
    Raises TrainingDiverged when a loss turns NaN/inf (the last good checkpoint stays)."""
    generator, discriminator = build_models(model_config, splits.train.images.mean(0), backend=backend,
                                            seed=train_config.seed)
    extra = dict(preset=preset, model_config=model_config.to_dict(), data_source=data_source)
    trainer = Trainer(generator, discriminator, splits.train.images, train_config, out_dir=out, extra_state=extra,
                      train_labels=splits.train.labels if model_config.num_classes else None, compile=compile)
    results_path = out / RESULTS_NAME
    if state is not None:
        trainer.load_state_dict(state)
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        print(f"resumed {out / CHECKPOINT_NAME} at step {trainer.step}")
    else:
        print(f"Parzen log-likelihood of the test digits under the untrained generator "
              f"({train_config.parzen_samples} samples):")
        untrained = generator_log_likelihood(generator, splits, train_config.parzen_samples, backend=backend,
                                             progress=progress)
        print(f"  untrained: {untrained.summary()}")
        results = dict(preset=preset, data=splits.source, backend=backend, untrained=untrained.to_dict())
    if steps is None and minutes is None:
        steps, minutes = train_config.steps, train_config.minutes
    budget = " or ".join(([f"{steps} steps"] if steps is not None else [])
                         + ([f"{minutes:g} minutes"] if minutes else []))
    conditional = f"conditional on {model_config.num_classes} classes, " if model_config.num_classes else ""
    print(f"training {preset} ({conditional}{budget}, backend {backend}, k={train_config.k}, "
          f"{'saturating' if train_config.saturating else 'non-saturating'} G loss) -> {out}")
    status = trainer.run(steps=steps, minutes=minutes, progress=progress)
    print(f"{status} after {trainer.step} steps ({trainer.epoch} epochs, {trainer.elapsed:.0f} s of training)")
    trained = generator_log_likelihood(generator, splits, train_config.parzen_samples, backend=backend,
                                       progress=progress)
    if "untrained" in results:
        print(f"  untrained: {_result_line(results['untrained'])}")
    print(f"  trained:   {trained.summary()}")
    figure = generator_samples_figure(generator, splits.train.images, out / "samples.png",
                                      image_shape=model_config.image_shape)
    results.update(trained=trained.to_dict(), steps=trainer.step, train_seconds=round(trainer.elapsed, 1))
    results_path.write_text(json.dumps(results, indent=2))
    print(f"wrote {figure}, {results_path}, {out / CHECKPOINT_NAME}, {out / 'metrics.jsonl'}")
    return status
