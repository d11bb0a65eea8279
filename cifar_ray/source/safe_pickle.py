"""A restricted unpickler: CIFAR batches are pickles, and a pickle can run any code it names
or ask for any amount of memory with a few bytes. Both are refused here.

What a CIFAR batch pickle needs (checked with pickletools on the official batches and on
batches numpy 2 writes): a dict of byte strings, a list of small ints, and numpy arrays, which
come as ``_reconstruct(ndarray, (0,), b"b")`` followed by ``__setstate__`` with the real shape,
a ``dtype('u1')`` and the raw bytes; Python 3 protocol-2 pickles spell bytes as
``_codecs.encode(text, "latin1")``. Every global resolves to a guard, never to the real
callable, so nothing is built that the pickle's own bytes do not pay for:

- an array's data must be bytes present in the pickle (its nbytes equals their length), its
  dtype a plain number type, and ``_reconstruct`` may only make the empty placeholder;
- builtins (``bytes(10**10)``), object arrays, dtype subarrays and fields are refused;
- before unpickling, ``pickletools.genops`` walks the opcodes: every length an opcode declares
  must be present (the C unpickler allocates a declared length before reading it) and every
  memo index must be one an earlier opcode could have filled (the memo grows to the index).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import reprlib
from typing import Any

import numpy as np

from cifar_ray.errors import UserError

_NUMBER_CODES = frozenset(
    [f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)] + ["f2", "f4", "f8", "b1"]
)
_BYTE_ORDERS = frozenset("<>|=")
_MAX_DIMS = 8
_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _Refused(pickle.UnpicklingError):
    pass


class _Array(np.ndarray):
    """The placeholder ``_reconstruct`` returns; its ``__setstate__`` is the only way in."""

    def __setstate__(self, state: Any) -> None:
        shape, dtype, fortran, raw = _array_state(state)
        super().__setstate__((1, shape, dtype, fortran, raw))


class _Dtype:
    """A number dtype by its code; ``__setstate__`` may only set the byte order."""

    def __init__(self, code: str) -> None:
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise _Refused(f"dtype state {_short(state)}")
        order = _text(state[1])
        if (
            order not in _BYTE_ORDERS
            or state[2:5] != (None, None, None)
            or state[8:]
            not in (
                (),
                (None,),
            )
        ):
            raise _Refused(f"dtype with subarray, fields or metadata: {_short(state)}")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


class _NdarrayName:
    """``numpy.ndarray`` may only name the class ``_reconstruct`` rebuilds, never be called."""

    def __call__(self, *args: Any) -> Any:
        raise _Refused("refused to call numpy.ndarray")


_NDARRAY = _NdarrayName()


def _reconstruct(cls: Any, shape: Any, _code: Any = None) -> _Array:
    if cls is not _NDARRAY:
        raise _Refused(f"_reconstruct of {_short(cls)}")
    dims = _dims(shape)
    if math.prod(dims) != 0:  # numpy writes (0,): the data comes with __setstate__
        raise _Refused(f"_reconstruct with shape {_short(shape)} (numpy writes (0,))")
    return _Array(0, dtype=np.uint8)


def _dtype(code: Any, align: Any = False, copy: Any = True) -> _Dtype:
    text = _text(code)
    if text not in _NUMBER_CODES:
        raise _Refused(f"dtype {_short(code)} (only number dtypes)")
    return _Dtype(text)


def _scalar(dtype: Any, raw: Any = None) -> Any:
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes):
        raise _Refused(f"scalar({_short(dtype)}, {_short(raw)})")
    if len(raw) != dtype.dtype.itemsize:
        raise _Refused(f"scalar of {len(raw)} bytes for {dtype.dtype}")
    return np.frombuffer(raw, dtype.dtype)[0]


def _encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"_codecs.encode with {_short(encoding)}")
    return text.encode("latin-1")


_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


def _array_state(state: Any) -> tuple[tuple[int, ...], np.dtype, bool, bytes]:
    """The state numpy's ``ndarray.__setstate__`` takes, refused unless its bytes are present."""
    if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
        state = state[1:]
    if not isinstance(state, tuple) or len(state) != 4:
        raise _Refused(f"array state {_short(state)}")
    shape, dtype, fortran, raw = state
    dims = _dims(shape)
    if not isinstance(dtype, _Dtype):
        raise _Refused(f"array of dtype {_short(dtype)}")
    if not isinstance(raw, bytes) or fortran not in (True, False):
        raise _Refused(f"array data of type {type(raw).__name__}")
    nbytes = math.prod(dims) * dtype.dtype.itemsize
    if nbytes != len(raw):
        raise _Refused(f"array of shape {dims} needs {nbytes} bytes, the pickle holds {len(raw)}")
    return dims, dtype.dtype, bool(fortran), raw


def _dims(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else shape
    if (
        not isinstance(dims, tuple)
        or len(dims) > _MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in dims)
    ):
        raise _Refused(f"array shape {_short(shape)}")
    return dims


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _short(value: Any) -> str:
    """A bounded repr: a hostile value may be 64 MB of bytes or nested 100,000 lists deep."""
    if isinstance(value, (bytes, str)) and len(value) > 40:
        return repr(value[:40]) + "..."
    return reprlib.repr(value)


def _plain(value: Any) -> Any:
    """Callers see plain ndarrays (top level and dict values), never the placeholder class."""
    if isinstance(value, _Array):
        return value.view(np.ndarray)
    if isinstance(value, dict):
        return {k: v.view(np.ndarray) if isinstance(v, _Array) else v for k, v in value.items()}
    return value


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _GLOBALS:
            raise _Refused(f"refused to load {module}.{name}")
        return _GLOBALS[(module, name)]


def _check_opcodes(data: bytes) -> None:
    """Declared lengths must be present and memo indexes reachable, before anything is built."""
    for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
        if op.name in _MEMO_OPS and arg > count:
            raise _Refused(f"memo index {arg} after {count} opcodes")


def loads(data: bytes, source: str) -> Any:
    """Unpickle Python-2-era CIFAR data; anything unexpected is bad input, not a crash."""
    try:
        _check_opcodes(data)
        return _plain(_RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load())
    except _Refused as exc:
        raise UserError(f"{source}: not a CIFAR batch ({exc})") from None
    except Exception as exc:  # truncated or garbled bytes raise many different types
        reason = " ".join(str(exc).split())[:160]
        raise UserError(f"{source}: corrupt pickle ({type(exc).__name__}: {reason})") from None
