"""``edgekit study``: a 2-cell sweep on tiny data writes its tables and Pareto plots, resumes
without redoing finished cells, and reads its grid from TOML."""
import csv
import json

import pytest

from benchmarks.study_report import pareto_front
from edgekit.cli import main

pytestmark = pytest.mark.slow

STUDY_FILES = {"study.json", "study.csv", "STUDY.md", "study_accuracy_vs_macs.png",
               "study_accuracy_vs_size.png", "study_accuracy_vs_latency.png"}


def test_two_cell_sweep_writes_results_and_resumes(tiny_tree, cache_dir, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('archs = ["seed_cnn", "ds_cnn"]\nwidths = [0.25]\nvariants = "float32,int8"\n'
                    '[train]\nepochs = 2\nbatch-size = 8\nval-fraction = 0.25\n')
    study = tmp_path / "study"
    argv = ["study", "--data", str(tiny_tree), "--out", str(study), "--grid", str(grid),
            "--threads", "1", "--bench-rounds", "1"]
    assert main(argv + ["--jobs", "2"]) == 0  # both cells at once, in separate processes
    assert STUDY_FILES <= {p.name for p in study.iterdir()}
    rows = json.loads((study / "study.json").read_text())["rows"]
    assert {(r["cell"], r["variant"]) for r in rows} == {
        (cell, variant) for cell in ("seed_cnn-w0.25", "ds_cnn-w0.25")
        for variant in ("keras", "float32", "int8")}
    for row in rows:
        assert row["error"] is None and 0 <= row["accuracy"] <= 1
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_median_ms"] > 0
    with open(study / "study.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    assert "Pareto" in (study / "STUDY.md").read_text()
    capsys.readouterr()

    assert main(argv) == 0  # resumed: every stage of every cell is skipped
    for cell in ("seed_cnn-w0.25", "ds_cnn-w0.25"):
        log = (study / "logs" / f"{cell}.log").read_text()
        assert log.count("already done, skipped") == 3


def test_bad_grid_files(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text("[train]\nepochz = 3\n")
    assert main(["study", "--out", str(tmp_path / "s"), "--grid", str(grid)]) == 2
    assert "unknown [train] keys in the grid file: epochz" in capsys.readouterr().err
    grid.write_text("archs = [")
    assert main(["study", "--out", str(tmp_path / "s"), "--grid", str(grid)]) == 2
    assert "unreadable grid file" in capsys.readouterr().err
    assert main(["study", "--out", str(tmp_path / "s"), "--archs", "vgg"]) == 2
    assert "unknown archs ['vgg']" in capsys.readouterr().err


def test_pareto_front_keeps_only_undominated_points():
    # (cost, accuracy): the second is beaten by the first (costlier and less accurate)
    points = [(10, 0.80), (20, 0.70), (30, 0.85), (5, 0.60), (30, 0.84)]
    assert pareto_front(points) == [3, 0, 2]
