"""python -m fastgan selftest: every backend that runs here against the float64 reference (fastgan.selftest)."""
from .common import UserError

HELP = "check every available backend of every op against the float64 reference on this machine"


def add_arguments(parser):
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, or auto (cuda when there is one)")


def run(args) -> int:
    import time

    import torch

    from fastgan import selftest

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device: expected cpu, cuda, cuda:N or auto, got {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: torch sees no CUDA GPU here (torch {torch.__version__}, "
                        f"CUDA {torch.version.cuda or 'none'}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device: fastgan runs on cpu and cuda, got {args.device!r}")
    started = time.perf_counter()
    checks = selftest.run(device)
    print(selftest.table(checks))
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks ok on {device} "
          f"({time.perf_counter() - started:.1f} s)" + (f"; MISMATCH: {', '.join(f'{c.op} ({c.backend})' for c in failed)}"
                                                       if failed else ""))
    return 1 if failed else 0
