"""ONNX Runtime's int8 arithmetic on x86 CPUs without an int8 dot-product instruction: which
CPUs they are, and that the runtime's sessions there compute int8 files exactly.

The exactness test runs the runtime under qemu's user-mode emulation of a Haswell CPU (AVX2,
no VNNI), whatever CPU runs the tests; `.ci/run` installs qemu-user for it.
"""
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import interpreters
from edge_runtime.cpu_features import onnx_int8_saturates

REPO = Path(__file__).resolve().parents[1]
QEMU = shutil.which("qemu-x86_64")

X86_WITH_VNNI = "model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"
X86_WITHOUT = "model name\t: Intel Xeon\nflags\t\t: fpu sse avx2 avx512f avx512bw\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd crc32 atomics\n"


@pytest.mark.parametrize("cpuinfo, machine, saturates", [
    (X86_WITH_VNNI, "x86_64", False),
    ("flags\t\t: fpu sse avx2 avx_vnni\n", "x86_64", False),
    (X86_WITHOUT, "x86_64", True),
    (X86_WITHOUT, "AMD64", True),
    (None, "AMD64", True),  # Windows: no /proc/cpuinfo to say, so the safe arithmetic
    (ARM, "aarch64", False),  # a Pi: ONNX Runtime's ARM kernels never saturate
    (None, "arm64", False),
])
def test_which_cpus_saturate(tmp_path, cpuinfo, machine, saturates):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert onnx_int8_saturates(str(path), machine) is saturates


def saturating_model(path: Path, outputs: int = 4) -> Path:
    """A QDQ MatMul of a (1, 1, 1, 3) image with int8 weights of 127: an image of ones makes
    every pair of uint8 x int8 products 2 x 255 x 127 = 64,770, past a 16-bit sum's 32,767.
    Its exact output is 3.0 in every column."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constants = {"shape": np.array([-1, 3], np.int64),
                 "x_scale": np.float32(1 / 127), "x_zero": np.int8(0),
                 "w": np.full((3, outputs), 127, np.int8),
                 "w_scale": np.float32(1 / 127), "w_zero": np.int8(0),
                 "y_scale": np.float32(3 / 127), "y_zero": np.int8(0)}
    node = helper.make_node
    nodes = [node("Reshape", ["image", "shape"], ["flat"]),
             node("QuantizeLinear", ["flat", "x_scale", "x_zero"], ["xq"]),
             node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["x"]),
             node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["weights"]),
             node("MatMul", ["x", "weights"], ["y"]),
             node("QuantizeLinear", ["y", "y_scale", "y_zero"], ["yq"]),
             node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["scores"])]
    graph = helper.make_graph(
        nodes, "saturating",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 1, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, outputs])],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


# Run under the emulated CPU. /proc/cpuinfo there is still the host's, which may list VNNI, so
# the script tells the runtime what the emulated CPU is: one without it.
EMULATED_RUN = """
import json, sys
import numpy as np
import onnxruntime
from edge_runtime import interpreters
interpreters.onnx_int8_saturates = lambda: True
image = np.ones((1, 1, 1, 3), np.float32)
plain = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(json.dumps({"plain ONNX Runtime": plain.run(None, {"image": image})[0].tolist(),
                  "edge_runtime": interpreters.OnnxModel(sys.argv[1]).predict(image).tolist()}))
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64" or QEMU is None,
                    reason="needs an x86_64 host and qemu-x86_64 (Debian's qemu-user)")
def test_int8_is_exact_on_an_x86_cpu_without_an_int8_dot_product(tmp_path):
    model = saturating_model(tmp_path / "saturating.onnx")
    done = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, "-c", EMULATED_RUN,
                           str(model)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    # The emulated CPU saturates as a real one does: a default session is far off...
    assert max(abs(value - 3.0) for value in scores["plain ONNX Runtime"][0]) > 1.0
    # ...and the runtime's session is exact.
    assert scores["edge_runtime"] == [[pytest.approx(3.0, abs=1e-6)] * 4]


@pytest.mark.parametrize("saturates", [True, False])
def test_the_session_asks_for_exact_int8_only_where_the_cpu_needs_it(tmp_path, monkeypatch,
                                                                     saturates):
    monkeypatch.setattr(interpreters, "onnx_int8_saturates", lambda: saturates)
    session = interpreters.OnnxModel(saturating_model(tmp_path / "m.onnx")).session
    options = session.get_session_options()
    if saturates:
        assert options.get_session_config_entry(interpreters.X64_QUANT_PRECISION) == "1"
    else:  # u8u8 kernels cost a CPU with VNNI 1.25x to 1.75x the latency, same outputs
        with pytest.raises(RuntimeError, match="does not have configuration"):
            options.get_session_config_entry(interpreters.X64_QUANT_PRECISION)
