"""Helpers every stage uses and none owns: atomic writes, the folder lock, progress bars, the
command line a stage records, child processes, and Keras imported quietly. They sit below the
stages (train, convert, benchmarks) and import none of them; only edge_runtime, the foundation.
"""
