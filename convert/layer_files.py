"""The per-layer quantization reports on disk: ``artifacts/quantization/<variant>.json`` for
each measured variant, and ``artifacts/quantization/REPORT.md`` with a plot of each variant's
SNR per layer in graph order (convert/quant_report.py measures them)."""
from __future__ import annotations

import json
from pathlib import Path

from edge_runtime.errors import printable
from edgekit.common.atomic import atomic_path, write_json, write_text

FOLDER = "quantization"
WORST_SHOWN = 5


def write_layer_report(artifacts: Path, variant: str, layers: list[dict]) -> dict:
    """Write the variant's layers; what its manifest entry says of them: the file and the
    worst layers."""
    folder = artifacts / FOLDER
    folder.mkdir(exist_ok=True)
    write_json(folder / f"{variant}.json", {"variant": variant, "layers": layers})
    worst = sorted(layers, key=lambda layer: layer["damage_rank"])[:3]
    return {"file": f"{FOLDER}/{variant}.json",
            "worst": [{key: layer[key] for key in ("tensor", "op", "channel_snr_db", "snr_db")}
                      for layer in worst]}


def _short(tensor: str) -> str:
    # TFLite names a fused operator after every op it holds ("a/Relu;a/BiasAdd;..."): the first
    # says which layer it is.
    return tensor.split(";")[0]


def _plot(reports: dict[str, list[dict]], target: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for variant, layers in reports.items():
        values = [layer["channel_snr_db"] for layer in layers]
        axis.plot(range(1, len(values) + 1), values, marker="o", label=variant)
    axis.set_xlabel("layer, in graph order")
    axis.set_ylabel("mean per-channel SNR of its output, dB")
    axis.set_title("Quantization error per layer (lower is worse)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_path(target) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
    return True


def write_quantization_summary(artifacts: Path) -> None:
    """REPORT.md and snr_per_layer.png over every variant's report present."""
    folder = artifacts / FOLDER
    reports = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            reports[path.stem] = json.loads(path.read_text())["layers"]
        except (OSError, ValueError, KeyError):
            continue
    if not reports:
        return
    lines = ["# Quantization error per layer", "",
             "Each integer variant's layers against the float model on the probe images "
             "(validation split): the RMS error relative to the float tensor's range, the "
             "signal-to-noise ratio and the cosine similarity of the float and quantized "
             "outputs, and the mean of each channel's SNR, by which the layers are ranked. "
             "TFLite: each layer's own error (TensorFlow's QuantizationDebugger); "
             "ONNX: the error accumulated up to each tensor (ONNX Runtime's qdq_loss_debug); "
             "quantization-aware variants: the error accumulated up to each layer against "
             "their fine-tuned weights in float (paired operator by operator). "
             "Worst first; every layer is in `<variant>.json`.", ""]
    plotted = _plot(reports, folder / "snr_per_layer.png")
    for variant, layers in reports.items():
        worst = sorted(layers, key=lambda layer: layer["damage_rank"])[:WORST_SHOWN]
        lines += [f"## {variant}", "",
                  "| rank | layer | op | channel SNR dB | SNR dB | RMSE / range | cosine | scale "
                  "| zero point |", "|---|---|---|---|---|---|---|---|---|"]
        for layer in worst:
            scale = "-" if layer.get("scale") is None else f"{layer['scale']:.3g}"
            zero = "-" if layer.get("zero_point") is None else str(layer["zero_point"])
            lines.append(f"| {layer['damage_rank']} | `{printable(_short(layer['tensor']))}` "
                         f"| {layer['op']} | {layer['channel_snr_db']:.1f} "
                         f"| {layer['snr_db']:.1f} "
                         f"| {layer['rmse_relative']:.4f} | {layer['cosine']:.4f} "
                         f"| {scale} | {zero} |")
        lines.append("")
    lines.append("![SNR per layer](snr_per_layer.png)" if plotted else
                 "No plot: matplotlib is not installed here.")
    write_text(folder / "REPORT.md", "\n".join(lines) + "\n")
