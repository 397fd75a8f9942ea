"""Where the networks run: device resolution, inference precision and the optional cuEquivariance kernels.

CPU is the default everywhere and needs nothing extra; ``device='cuda'`` (or ``'cuda:1'``) moves model and
tensors to a GPU and, unless a precision is given, computes in float32 (the precision the models are
trained in; float64 on a GPU is 2–64× slower depending on the card). A GPU that is asked for but absent
is a :class:`DeviceUnavailableError` with the reason (never a CUDA traceback), so a CalcJob can turn it
into its own exit code.

cuEquivariance (NVIDIA's ``cuequivariance_torch``) is optional: :func:`kernel_backend` reports whether it
could be used; the HedgeNet layers currently always run e3nn's kernels (see its message).
"""

from __future__ import annotations

from dataclasses import dataclass

#: the precisions the HedgeNet models compute in
DTYPES = ("float32", "float64")


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this computer (e.g. ``'cuda'`` without a CUDA GPU)."""


def resolve_device(name: str | None):
    """The ``torch.device`` for ``name`` ('cpu', 'cuda', 'cuda:N'; None → 'cpu').

    Raises :class:`DeviceUnavailableError` for an unknown name, a CUDA device without CUDA, or a GPU index
    beyond the GPUs present.
    """
    import torch

    name = "cpu" if name is None else str(name)
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise DeviceUnavailableError(f"invalid device {name!r} (use 'cpu' or 'cuda'): {exc}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceUnavailableError(f"device {name!r} is not supported; use 'cpu' or 'cuda'")
    if not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else f"torch built for CUDA {torch.version.cuda}"
        raise DeviceUnavailableError(f"device {name!r} requested but CUDA is not available on this computer "
                                     f"({build}, {torch.cuda.device_count()} GPU(s) visible); run on a GPU "
                                     "node or set device='cpu'")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) "
                                     "are visible")
    return device


def inference_dtype(requested: str | None, model_dtype: str, device) -> str:
    """The precision to compute in: ``requested`` if given, else float32 on a GPU and the model's own on CPU."""
    if requested is not None:
        if requested not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {requested!r}")
        return requested
    return "float32" if getattr(device, "type", str(device)) == "cuda" else model_dtype


@dataclass(frozen=True)
class KernelBackend:
    """Which equivariant tensor-product kernels run, and why."""

    name: str  #: 'e3nn' (always today) or 'cuequivariance'
    cuequivariance_importable: bool
    message: str

    def to_dict(self) -> dict:
        return {"name": self.name, "cuequivariance_importable": self.cuequivariance_importable,
                "message": self.message}


def kernel_backend(device) -> KernelBackend:
    """The kernels of the HedgeNet tensor products on ``device`` (never raises: cuEquivariance is optional)."""
    try:
        import cuequivariance_torch  # noqa: F401

        importable = True
    except Exception:  # ImportError, or a broken CUDA extension
        importable = False
    if getattr(device, "type", str(device)) != "cuda":
        return KernelBackend("e3nn", importable, "CPU: e3nn kernels")
    if not importable:
        return KernelBackend("e3nn", False, "cuequivariance_torch is not importable (pip install "
                                            "cuequivariance-torch cuequivariance-ops-torch-cu12): e3nn kernels on the GPU")
    return KernelBackend("e3nn", True, "cuequivariance_torch is importable, but the HedgeNet layers are not yet "
                                       "converted to its kernels: e3nn kernels on the GPU")
