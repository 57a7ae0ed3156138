"""convert: RUN_DIR/model.keras -> RUN_DIR/artifacts/ (TFLite and ONNX variants + manifest.json).

In: a finished training run directory. Out: one file per variant, each verified against the
Keras model on validation images and described in manifest.json.
Command: ``edgekit convert RUN_DIR [--variants int8,onnx-int8]``.
"""
