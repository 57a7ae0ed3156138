"""benchmarks: measurements that compare choices in one run (ratios), printed and saved as JSON.

Command: ``edgekit bench RUN_DIR`` (every converted file against the Keras model, into
RUN_DIR/report), ``edgekit bench RUN_DIR/artifacts`` (the files alone, as on a device), and
the narrower tools ``python -m benchmarks.NAME`` (README, "Benchmarks").
"""
