"""smdebug 1.0.34 on current numpy: its tensor writer calls `ndarray.tostring()`, which numpy 2.3
removed (it was an alias of `tobytes()`, deprecated since 1.19). Everything else smdebug does
with numpy (the reader's `np.frombuffer`, the dtype table) works on numpy 2.x.

`apply()` replaces smdebug's `make_tensor_proto` with the same function calling `tobytes()`,
in the two modules that hold it (util defines it, writer imported the name). It is narrow on
purpose: it changes nothing when numpy still has `tostring`, and does nothing if a future
smdebug no longer has the function.
"""

from __future__ import annotations

_applied = False


def needs_patch() -> bool:
    import numpy as np

    return not hasattr(np.ndarray, "tostring")


def make_tensor_proto(nparray_data, tag):
    """smdebug.core.tfevent.util.make_tensor_proto with `tobytes()` for `tostring()`."""
    from smdebug.core.tfevent.proto.tensor_pb2 import TensorProto
    from smdebug.core.tfevent.proto.tensor_shape_pb2 import TensorShapeProto
    from smdebug.core.tfevent.util import _get_proto_dtype

    isnum, dtype = _get_proto_dtype(nparray_data.dtype)
    shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=d, name=f"{tag}_{d}") for d in nparray_data.shape])
    if isnum:
        return TensorProto(dtype=dtype, tensor_content=nparray_data.tobytes(), tensor_shape=shape)
    proto = TensorProto(tensor_shape=shape)
    for s in nparray_data:
        proto.string_val.append(bytes(s, encoding="utf-8"))
    return proto


def apply() -> bool:
    """Patch smdebug's writer if this numpy needs it; True when the patch is in place."""
    global _applied
    if _applied or not needs_patch():
        return _applied
    from smdebug.core import writer
    from smdebug.core.tfevent import util

    if not hasattr(util, "make_tensor_proto"):
        return False
    util.make_tensor_proto = writer.make_tensor_proto = make_tensor_proto
    _applied = True
    return True
