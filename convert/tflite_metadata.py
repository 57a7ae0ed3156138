"""TFLite metadata (the ``TFLITE_METADATA`` flatbuffer that MediaPipe and LiteRT tools read):
labels as an associated file of the output, input normalization and image properties.

Written with the plain ``flatbuffers`` builder against tflite-support's metadata_schema.fbs
(file identifier ``M001``), because the maintained writer (mediapipe's) cannot be installed
beside tensorflow-model-optimization (absl-py pins clash; docs/dependencies.md). Field slots below
are the schema's declaration order; a union takes two slots (type, then value).

The model itself is edited with LiteRT's own schema bindings, and the associated files are
appended as a zip archive, which is how TFLite model files carry them.
"""
from __future__ import annotations

import io
import zipfile

import flatbuffers

LABELS_FILE = "labels.txt"
METADATA_NAME = "TFLITE_METADATA"
MIN_PARSER_VERSION = "1.0.0"

_ASSOCIATED_FILE_TENSOR_AXIS_LABELS = 2
_COLOR_SPACE_RGB = 1
_CONTENT_FEATURE_PROPERTIES = 1
_CONTENT_IMAGE_PROPERTIES = 2
_PROCESS_UNIT_NORMALIZATION = 1


def _table(builder: flatbuffers.Builder, fields: list) -> int:
    """A table from (slot, kind, value) fields; kind is 'offset', 'uint8' or 'uint32'."""
    builder.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
    for slot, kind, value in fields:
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "uint8":
            builder.PrependUint8Slot(slot, value, 0)
        else:
            builder.PrependUint32Slot(slot, value, 0)
    return builder.EndObject()


def _vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values: list[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def build_metadata(name: str, description: str, num_classes: int, image_size: int,
                   mean: float, std: float) -> bytes:
    """ModelMetadata flatbuffer for an image classifier with one input and one output."""
    b = flatbuffers.Builder(1024)
    # Input: an RGB image, normalized (x - mean) / std before quantization.
    image_size_table = _table(b, [(0, "uint32", image_size), (1, "uint32", image_size)])
    image_properties = _table(b, [(0, "uint8", _COLOR_SPACE_RGB), (1, "offset", image_size_table)])
    input_content = _table(b, [(0, "uint8", _CONTENT_IMAGE_PROPERTIES), (1, "offset", image_properties)])
    normalization = _table(b, [(0, "offset", _floats(b, [mean])), (1, "offset", _floats(b, [std]))])
    process_unit = _table(b, [(0, "uint8", _PROCESS_UNIT_NORMALIZATION), (1, "offset", normalization)])
    input_tensor = _table(b, [
        (0, "offset", b.CreateString("image")),
        (1, "offset", b.CreateString(f"RGB image, {image_size}x{image_size}, normalized as "
                                     f"(pixel - {mean:g}) / {std:g}")),
        (3, "offset", input_content),
        (4, "offset", _vector(b, [process_unit])),
    ])
    # Output: one probability per class; labels.txt names them in order.
    labels = _table(b, [
        (0, "offset", b.CreateString(LABELS_FILE)),
        (1, "offset", b.CreateString("class names, one per line, in output order")),
        (2, "uint8", _ASSOCIATED_FILE_TENSOR_AXIS_LABELS),
    ])
    feature = _table(b, [])
    output_content = _table(b, [(0, "uint8", _CONTENT_FEATURE_PROPERTIES), (1, "offset", feature)])
    output_tensor = _table(b, [
        (0, "offset", b.CreateString("probabilities")),
        (1, "offset", b.CreateString(f"probabilities of the {num_classes} classes")),
        (3, "offset", output_content),
        (6, "offset", _vector(b, [labels])),
    ])
    subgraph = _table(b, [
        (0, "offset", b.CreateString("image_classifier")),
        (2, "offset", _vector(b, [input_tensor])),
        (3, "offset", _vector(b, [output_tensor])),
    ])
    root = _table(b, [
        (0, "offset", b.CreateString(name)),
        (1, "offset", b.CreateString(description)),
        (3, "offset", _vector(b, [subgraph])),
        (7, "offset", b.CreateString(MIN_PARSER_VERSION)),
    ])
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def populate(model: bytes, metadata: bytes, labels: list[str]) -> bytes:
    """Return ``model`` with ``metadata`` in a TFLITE_METADATA buffer and labels.txt appended
    as a zip archive (replacing metadata an earlier call added)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(_strip_zip(model)))
    tree.metadata = [m for m in (tree.metadata or []) if m.name.decode() != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = list(metadata)  # the bindings pack this list as a ubyte vector
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata.append(entry)
    flat = bytes(flatbuffer_utils.convert_object_to_bytearray(tree))
    archive = io.BytesIO()
    archive.write(flat)
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr(LABELS_FILE, "".join(f"{label}\n" for label in labels))
    return archive.getvalue()


def _strip_zip(model: bytes) -> bytes:
    """The flatbuffer part of a model that may already carry an appended zip archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as bundle:
            start = min(info.header_offset for info in bundle.infolist())
        return model[:start]
    except zipfile.BadZipFile:
        return model
