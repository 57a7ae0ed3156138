"""Reads what a deployed model file says about itself: class labels and input normalization.

TFLite files carry the ``TFLITE_METADATA`` flatbuffer (tflite-support's metadata_schema.fbs)
plus an appended zip holding labels.txt; ONNX files carry metadata properties. The flatbuffers
are walked field by field with the ``flatbuffers`` runtime (a dependency of ai-edge-litert), so
no generated schema code, TensorFlow or MediaPipe is needed on the device.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Optional

from .errors import UserError


@dataclass(frozen=True)
class ModelInfo:
    """What a model file states about how to use it."""

    labels: list[str]
    norm_mean: float
    norm_std: float
    image_size: Optional[int]


class MetadataError(UserError):
    """A model file whose metadata is missing or unreadable."""


# Slot numbers follow the declaration order of each table in the schemas.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_MM_SUBGRAPHS = 3
_SG_INPUTS, _SG_OUTPUTS = 2, 3
_TM_CONTENT, _TM_PROCESS_UNITS, _TM_FILES = 3, 4, 6
_NORMALIZATION_OPTIONS = 1
_IMAGE_PROPERTIES = 2
_LABELS_TYPE = 2


class _Table:
    """Slot-based access to one flatbuffer table."""

    def __init__(self, buffer: bytes, position: int):
        from flatbuffers import table

        self.tab = table.Table(buffer, position)

    @classmethod
    def root(cls, buffer: bytes) -> "_Table":
        from flatbuffers import encode, number_types

        return cls(buffer, encode.Get(number_types.UOffsetTFlags.packer_type, buffer, 0))

    def _offset(self, slot: int) -> int:
        return self.tab.Offset(4 + 2 * slot)

    def string(self, slot: int) -> Optional[str]:
        offset = self._offset(slot)
        return self.tab.String(offset + self.tab.Pos).decode() if offset else None

    def scalar(self, slot: int, flags, default=0):
        offset = self._offset(slot)
        return self.tab.Get(flags, offset + self.tab.Pos) if offset else default

    def table(self, slot: int) -> Optional["_Table"]:
        offset = self._offset(slot)
        return _Table(self.tab.Bytes, self.tab.Indirect(offset + self.tab.Pos)) if offset else None

    def tables(self, slot: int) -> list["_Table"]:
        offset = self._offset(slot)
        if not offset:
            return []
        start = self.tab.Vector(offset)
        return [_Table(self.tab.Bytes, self.tab.Indirect(start + 4 * i))
                for i in range(self.tab.VectorLen(offset))]

    def vector(self, slot: int, flags) -> list:
        offset = self._offset(slot)
        if not offset:
            return []
        start = self.tab.Vector(offset)
        return [self.tab.Get(flags, start + flags.bytewidth * i)
                for i in range(self.tab.VectorLen(offset))]

    def bytes_vector(self, slot: int) -> bytes:
        offset = self._offset(slot)
        if not offset:
            return b""
        start = self.tab.Vector(offset)
        return bytes(self.tab.Bytes[start:start + self.tab.VectorLen(offset)])


def _tflite_metadata_buffer(model: bytes) -> bytes:
    from flatbuffers import number_types as n

    root = _Table.root(model)
    for entry in root.tables(_MODEL_METADATA):
        if entry.string(_METADATA_NAME) == "TFLITE_METADATA":
            buffer_index = entry.scalar(_METADATA_BUFFER, n.Uint32Flags)
            return root.tables(_MODEL_BUFFERS)[buffer_index].bytes_vector(0)
    raise MetadataError("no TFLITE_METADATA in the model")


def read_tflite_info(model: bytes, name: str = "model") -> ModelInfo:
    """Labels (from the appended zip) and normalization (from the metadata) of a .tflite."""
    from flatbuffers import number_types as n

    try:
        metadata = _Table.root(_tflite_metadata_buffer(model))
        subgraph = metadata.tables(_MM_SUBGRAPHS)[0]
        image = subgraph.tables(_SG_INPUTS)[0]
        output = subgraph.tables(_SG_OUTPUTS)[0]
        mean, std = 0.0, 1.0
        for unit in image.tables(_TM_PROCESS_UNITS):
            if unit.scalar(0, n.Uint8Flags) == _NORMALIZATION_OPTIONS:
                options = unit.table(1)
                mean = options.vector(0, n.Float32Flags)[0]
                std = options.vector(1, n.Float32Flags)[0]
        size = None
        content = image.table(_TM_CONTENT)
        if content is not None and content.scalar(0, n.Uint8Flags) == _IMAGE_PROPERTIES:
            default_size = content.table(1).table(1)
            size = default_size.scalar(0, n.Uint32Flags) if default_size else None
        label_files = [f.string(0) for f in output.tables(_TM_FILES)
                       if f.scalar(2, n.Int8Flags) == _LABELS_TYPE]
    except MetadataError as exc:
        raise MetadataError(f"{name}: {exc}") from None
    except (IndexError, ValueError, AttributeError, TypeError) as exc:
        raise MetadataError(f"{name}: unreadable TFLite metadata ({exc})") from None
    if not label_files:
        raise MetadataError(f"{name}: the metadata names no label file")
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as bundle:
            labels = bundle.read(label_files[0]).decode().splitlines()
    except (zipfile.BadZipFile, KeyError) as exc:
        raise MetadataError(f"{name}: label file {label_files[0]} not packed in the model "
                            f"({exc})") from None
    return ModelInfo(labels, float(mean), float(std), size)


def info_from_properties(properties: dict, name: str = "model") -> ModelInfo:
    """ModelInfo from ONNX metadata properties (string values, JSON-encoded where needed)."""
    try:
        return ModelInfo(json.loads(properties["labels"]), float(properties["norm_mean"]),
                         float(properties["norm_std"]),
                         int(properties["image_size"]) if "image_size" in properties else None)
    except (KeyError, ValueError, TypeError) as exc:
        raise MetadataError(f"{name}: missing or bad metadata property ({exc})") from None
