"""notebooks/walkthrough.ipynb runs top to bottom (on a tiny tree, quick settings) and every
stage leaves its files behind; a failing cell fails the test."""
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes(tiny_tree, cache_dir, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "run"
    # Data copied from a Mac: Finder's files are no images for the runtime's cells to classify.
    for folder in (tiny_tree / "train", tiny_tree / "test", tiny_tree / "test" / "class1"):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    for name, value in {"EDGEKIT_NB_DATA": str(tiny_tree), "EDGEKIT_NB_OUT": str(out),
                        "EDGEKIT_NB_EPOCHS": "2", "EDGEKIT_NB_VARIANTS": "float32,int8",
                        "EDGEKIT_NB_QUICK": "1"}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (out / "model.keras").is_file() and (out / "confusion_matrix.png").is_file()
    assert (out / "artifacts" / "model_int8.tflite").is_file()
    assert (out / "report" / "REPORT.md").is_file()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("backend: ai-edge-litert" in o.get("text", "") for o in outputs)
