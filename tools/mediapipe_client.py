"""Classify images with MediaPipe's ImageClassifier, a real client of our .tflite files that we
did not write. Runs under any Python that has mediapipe (it needs its own environment: its
absl-py pin clashes with tensorflow-model-optimization's), importing nothing of ours.

    PYTHON_WITH_MEDIAPIPE tools/mediapipe_client.py MODEL.tflite IMAGE... > top1.json

Prints one JSON list: [category_name, index] per image, in the order given.
"""
import json
import sys


def main(model_path: str, image_paths: list) -> list:
    """Top-1 (label, index) of every image."""
    import mediapipe as mp
    from mediapipe.tasks import python as tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(
        base_options=tasks.BaseOptions(model_asset_path=model_path), max_results=1)
    classifier = vision.ImageClassifier.create_from_options(options)
    try:
        results = []
        for path in image_paths:
            top = classifier.classify(mp.Image.create_from_file(path)).classifications[0]
            results.append([top.categories[0].category_name, top.categories[0].index])
        return results
    finally:
        classifier.close()  # relying on __del__ prints an error at shutdown (docs/dependencies.md)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: mediapipe_client.py MODEL.tflite IMAGE...")
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
