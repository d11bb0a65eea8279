"""A restricted unpickler: CIFAR batches are pickles, and a pickle can run any code it names."""

from __future__ import annotations

import io
import pickle
from typing import Any

from cifar_ray.errors import UserError

# Everything a CIFAR batch (numpy arrays, dtypes, plain containers) needs, and nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "tuple"),
    ("builtins", "bytes"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("builtins", "float"),
}


class _Refused(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise _Refused(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def loads(data: bytes, source: str) -> Any:
    """Unpickle Python-2-era CIFAR data; anything unexpected is bad input, not a crash."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise UserError(f"{source}: not a CIFAR batch ({exc})") from None
    except Exception as exc:  # truncated or garbled bytes raise many different types
        raise UserError(f"{source}: corrupt pickle ({type(exc).__name__}: {exc})") from None
