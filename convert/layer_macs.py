"""Multiply-accumulates per layer of a converted file, keyed by the layer's output tensor (the
name the per-layer reports use): one MAC per weight per output position, counted for the
layers that multiply by weights (convolutions and fully connected layers), as
edgekit.train.macs counts a Keras model. The cost int8-mixed weighs against the accuracy a
float layer buys back."""
from __future__ import annotations

import math

import numpy as np

TFLITE_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
ONNX_WEIGHTED = {"Conv", "Gemm", "MatMul"}


def tflite_layer_macs(content: bytes) -> dict[str, int]:
    """{output tensor name: MACs for one image} of every operator of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    macs = {}
    for node in interpreter._get_ops_details():  # no public API lists the operators
        output = tensors[node["outputs"][0]]
        count = 0
        if node["op_name"] in TFLITE_WEIGHTED:
            weights = tensors[node["inputs"][1]]["shape"]
            # The output's positions: its axes between batch and channels (none for FC).
            count = math.prod(int(d) for d in weights) * \
                math.prod(int(d) for d in output["shape"][1:-1])
        macs[output["name"]] = count
    return macs


def onnx_layer_macs(content: bytes) -> dict[str, int]:
    """{output tensor name: MACs for one image} of every node of an ONNX model, float or QDQ
    (a QDQ node's weights are the int8 initializer its DequantizeLinear reads)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(content))
    graph = model.graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    for info in list(graph.value_info) + list(graph.output):
        shapes.setdefault(info.name, [d.dim_value for d in info.type.tensor_type.shape.dim])
    dequantized = {node.output[0]: node.input[0] for node in graph.node
                   if node.op_type == "DequantizeLinear"}
    macs = {}
    for node in graph.node:
        count = 0
        if node.op_type in ONNX_WEIGHTED and len(node.input) > 1:
            weights = shapes.get(dequantized.get(node.input[1], node.input[1]))
            output = shapes.get(node.output[0])
            if weights and output:
                # Conv outputs are NCHW: the positions are the axes after the channels.
                positions = output[2:] if node.op_type == "Conv" else []
                count = int(np.prod(weights)) * math.prod(positions)
        macs[node.output[0]] = count
    return macs
