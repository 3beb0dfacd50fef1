"""Argument checks and backend plumbing shared by the ops in this package."""
import torch

from .. import _ext, backends


def check_tensor(x, name, *, floating=True):
    """TypeError unless `x` is a tensor (of a floating dtype when `floating`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float32, float64, float16, bfloat16), got {x.dtype}")


def check_same(tensors, names):
    """TypeError/ValueError unless the tensors share one dtype and one device; names the odd one out."""
    first, first_name = tensors[0], names[0]
    for t, name in zip(tensors[1:], names[1:]):
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}; put them on one device")
        if t.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but {first_name} has {first.dtype}; use one dtype")


def pick_backend(backend, device, dtype):
    """Resolves `backend` for tensors of `device`/`dtype`; half precision on the CPU kernels is refused."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    chosen = backends.resolve(backend, device)
    if chosen == "cpu" and dtype not in (torch.float32, torch.float64):
        if backend == "cpu":
            raise TypeError(f"backend 'cpu' takes float32 or float64, got {dtype}; use backend='torch'")
        chosen = "torch"
    return chosen


def needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def compiled(name, backend):
    """The extension's entry point `<name>_cpu` or `<name>_cuda` for backend "cpu" or "cuda"; the first CPU call
    chooses the CPU's GEMM library (backends.cpu_gemm)."""
    if backend == "cpu" and backends._cpu_gemm is None:
        backends.cpu_gemm()
    return getattr(_ext.load(), f"{name}_{backend}")


_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)  # Parameter turns its own __torch_function__ off


def plain_eager(tensors):
    """Whether a call may run a kernel directly: plain tensors or parameters (no tensor subclass), outside
    torch.compile's and torch.jit.trace's tracing and outside any torch function or dispatch mode (those
    must see the custom op)."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not torch._C._is_torch_function_mode_enabled()
            and torch._C._len_torch_dispatch_stack() == 0 and all(type(t) in _PLAIN_TYPES for t in tensors))


class FusedOp:
    """A custom op `name` made from `impl` (with its fake kernel and, if given, its autograd), plus a direct
    eager entry.

    The custom op is what torch.compile, torch.export, opcheck and dispatch modes see. A plain eager call
    skips its Python layers and runs `impl` itself, inside a torch.autograd.Function with the same
    setup_context and backward when a gradient is needed: the paper's 100 x 240 x 5 maxout fwd+bwd took
    ~30 us less per step on one core this way (the custom op's dispatch costs ~9 us a call; its autograd
    wrapper, the rest).
    """

    def __init__(self, name, impl, fake, setup_context=None, backward=None):
        self.op = torch.library.custom_op(name, impl, mutates_args=())
        self.op.register_fake(fake)
        self.impl = impl
        self.function = None
        if backward is not None:
            self.op.register_autograd(backward, setup_context=setup_context)

            # forward(ctx, ...): with a separate setup_context, Function.apply binds the arguments with
            # inspect.signature on every call (~10 us)
            def forward(ctx, *args):
                output = impl(*args)
                setup_context(ctx, args, output)
                return output

            self.function = type(impl.__name__.strip("_"), (torch.autograd.Function,), {
                "forward": staticmethod(forward), "backward": staticmethod(backward)})

    def __call__(self, *args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not plain_eager(tensors):
            return self.op(*args)
        if self.function is not None and torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            return self.function.apply(*args)
        return self.impl(*args)
