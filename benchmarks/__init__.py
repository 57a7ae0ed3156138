"""benchmarks: accuracy, latency, memory and size of every converted variant against the Keras
model, measured in one run (ratios), and the study's tables and plots.

In: a converted run directory (RUN_DIR/artifacts/manifest.json), or a folder of converted
files alone. Out: RUN_DIR/report/ (benchmark.json, benchmark.csv, REPORT.md, plots).
Command: ``edgekit bench RUN_DIR`` or ``edgekit bench RUN_DIR/artifacts`` (the files alone, as
on a device). One-off measurements live in the repository's tools/ (docs/results.md).
"""
