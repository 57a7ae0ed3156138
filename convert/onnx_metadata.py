"""Labels and input normalization inside an ONNX file (``metadata_props``), so a deployed file
needs nothing beside it."""
from __future__ import annotations

import json


def with_metadata(model_bytes: bytes, info: dict) -> bytes:
    """Return ``model_bytes`` with each key of ``info`` stored as a metadata property (values
    that are not strings are JSON-encoded)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in info.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    return model.SerializeToString()


def read_metadata(model_bytes: bytes) -> dict:
    """The metadata properties of an ONNX model, JSON values decoded."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    result = {}
    for entry in model.metadata_props:
        try:
            result[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            result[entry.key] = entry.value
    return result
