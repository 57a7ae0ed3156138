"""benchmarks: measurements that compare choices in one run (ratios), printed and saved as JSON.

Command: ``python -m benchmarks.train_throughput --data PATH`` (training input pipeline).
The per-variant deployment benchmark (``edgekit bench``) comes with issue 5.
"""
