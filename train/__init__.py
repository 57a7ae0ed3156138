"""train: data (CIFAR-10 or image folders) -> a trained Keras 3 model in a run directory.

In: ``--data`` (see ``train.data``). Out: RUN_DIR with model.keras, config.json, labels.txt,
history.csv, metrics.json, classification_report.txt and the pictures.
Command: ``edgekit train --data PATH --arch seed_cnn --recipe fast --out RUN_DIR``.
"""
