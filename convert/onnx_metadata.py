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

