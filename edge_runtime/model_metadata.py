"""Reads what a deployed model file says about itself: class labels and input normalization.

TFLite files carry the ``TFLITE_METADATA`` flatbuffer (tflite-support's metadata_schema.fbs)
plus an appended zip holding labels.txt; ONNX files carry metadata properties. The flatbuffers
are walked field by field with ``struct``, so no generated schema code, flatbuffers package,
TensorFlow or MediaPipe is needed on the device (tflite-runtime does not ship flatbuffers).
"""
from __future__ import annotations

import io
import json
import struct
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
    """Slot-based access to one flatbuffer table, read with ``struct`` (no flatbuffers package
    is needed on the device). Out-of-range offsets raise struct.error or IndexError."""

    def __init__(self, buffer: bytes, position: int):
        self.buffer = buffer
        self.position = position
        self.vtable = position - _read("<i", buffer, position)
        self.vtable_size = _read("<H", buffer, self.vtable)

    @classmethod
    def root(cls, buffer: bytes) -> "_Table":
        return cls(buffer, _read("<I", buffer, 0))

    def _field(self, slot: int) -> int:
        """Absolute position of a field, or 0 when the field is absent."""
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return 0
        offset = _read("<H", self.buffer, self.vtable + entry)
        return self.position + offset if offset else 0

    def _target(self, slot: int) -> int:
        field = self._field(slot)
        return field + _read("<I", self.buffer, field) if field else 0

    def _length(self, target: int, width: int) -> int:
        """Element count of the vector at target, checked against the buffer's end (a corrupt
        count must not make us build a list of billions of offsets)."""
        length = _read("<I", self.buffer, target)
        if target + 4 + width * length > len(self.buffer):
            raise IndexError("vector runs past the end of the buffer")
        return length

    def string(self, slot: int) -> Optional[str]:
        return self.bytes_vector(slot).decode() if self._field(slot) else None

    def scalar(self, slot: int, fmt: str, default=0):
        field = self._field(slot)
        return _read(fmt, self.buffer, field) if field else default

    def table(self, slot: int) -> Optional["_Table"]:
        target = self._target(slot)
        return _Table(self.buffer, target) if target else None

    def tables(self, slot: int) -> list["_Table"]:
        target = self._target(slot)
        if not target:
            return []
        elements = [target + 4 + 4 * i for i in range(self._length(target, 4))]
        return [_Table(self.buffer, e + _read("<I", self.buffer, e)) for e in elements]

    def vector(self, slot: int, fmt: str) -> list:
        target = self._target(slot)
        if not target:
            return []
        width = struct.calcsize(fmt)
        return [_read(fmt, self.buffer, target + 4 + width * i)
                for i in range(self._length(target, width))]

    def bytes_vector(self, slot: int) -> bytes:
        target = self._target(slot)
        if not target:
            return b""
        length = self._length(target, 1)
        return bytes(self.buffer[target + 4:target + 4 + length])


def _read(fmt: str, buffer: bytes, position: int):
    if position < 0:
        raise IndexError("negative offset")
    return struct.unpack_from(fmt, buffer, position)[0]


def _tflite_metadata_buffer(model: bytes) -> bytes:
    root = _Table.root(model)
    for entry in root.tables(_MODEL_METADATA):
        if entry.string(_METADATA_NAME) == "TFLITE_METADATA":
            buffer_index = entry.scalar(_METADATA_BUFFER, "<I")
            return root.tables(_MODEL_BUFFERS)[buffer_index].bytes_vector(0)
    raise MetadataError("no TFLITE_METADATA in the model")


def read_tflite_info(model: bytes, name: str = "model") -> ModelInfo:
    """Labels (from the appended zip) and normalization (from the metadata) of a .tflite."""
    try:
        metadata = _Table.root(_tflite_metadata_buffer(model))
        subgraph = metadata.tables(_MM_SUBGRAPHS)[0]
        image = subgraph.tables(_SG_INPUTS)[0]
        output = subgraph.tables(_SG_OUTPUTS)[0]
        mean, std = 0.0, 1.0
        for unit in image.tables(_TM_PROCESS_UNITS):
            if unit.scalar(0, "<B") == _NORMALIZATION_OPTIONS:
                options = unit.table(1)
                mean = options.vector(0, "<f")[0]
                std = options.vector(1, "<f")[0]
        size = None
        content = image.table(_TM_CONTENT)
        if content is not None and content.scalar(0, "<B") == _IMAGE_PROPERTIES:
            default_size = content.table(1).table(1)
            size = default_size.scalar(0, "<I") if default_size else None
        label_files = [f.string(0) for f in output.tables(_TM_FILES)
                       if f.scalar(2, "<b") == _LABELS_TYPE]
    except MetadataError as exc:
        raise MetadataError(f"{name}: {exc}") from None
    except (IndexError, ValueError, AttributeError, TypeError, struct.error,
            RecursionError) as exc:
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
