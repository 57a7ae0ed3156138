"""Every converted file of a run on the emulated Raspberry Pis against this machine, on real
test images: per file and environment, top-1 agreement with this machine's ai-edge-litert
(onnxruntime for ONNX files) and the largest probability difference.

    python -m tools.pi_agreement RUN_DIR TEST_FOLDER [--per-class 20]

TEST_FOLDER holds one folder of images per class (../shared/datasets/cifar10-jpeg/test);
the first N images of each class are classified. The emulated environments are
`edgekit check --setup`'s.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from edge_runtime.errors import UserError
from edge_runtime.manifest import read_manifest
from edgekit.convert.check_cli import files_to_check
from edgekit.convert.device_check import probe_environment, runtimes_for
from edgekit.convert.device_envs import available_environments, default_cache

from .tool_main import check_positive_counts, run_tool


def chosen_images(folder: Path, per_class: int) -> list[str]:
    """The first ``per_class`` files of each class folder, in name order."""
    classes = sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() \
        else []
    if not classes:
        raise UserError(f"{folder}: no class folders of images")
    return [str(path) for name in classes for path in sorted(name.iterdir())[:per_class]]


def _integer_outputs(ours: np.ndarray, same: "np.ndarray | None", integer: bool) -> str:
    """For a file with int8 outputs run by the same runtime here: "identical", or how many
    images' outputs differ and by how many steps of 1/256 at most."""
    if same is None or not integer:
        return "-"
    differ = np.any(ours != same, axis=1)
    if not differ.any():
        return "identical"
    steps = int(round(float(np.abs(ours - same).max()) * 256))
    return f"{int(differ.sum())} of {len(ours)} images differ, by {steps}/256 at most"


def main(argv=None) -> int:
    """Print one line per file, environment and runtime."""
    parser = argparse.ArgumentParser(prog="python -m tools.pi_agreement",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("test_folder", type=Path)
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args(argv)
    check_positive_counts(args, "per_class")
    files, folder = files_to_check([args.run_dir])
    manifest = read_manifest(folder / "manifest.json")
    integer = {entry["name"] for entry in manifest["variants"]
               if entry.get("io", {}).get("output", {}).get("dtype") in ("int8", "uint8")}
    images = chosen_images(args.test_folder, args.per_class)
    environments = [env for env in available_environments(default_cache())
                    if "MediaPipe" not in env.name]
    if not any(env.emulated for env in environments):
        raise UserError("no emulated Pi built: run edgekit check --setup first")
    with tempfile.TemporaryDirectory() as work:
        listed = Path(work) / "images.txt"
        listed.write_text("\n".join(images) + "\n")
        answers = {}
        for environment in environments:
            for runtime in environment.runtimes:
                chosen = [path for name, path in files.items()
                          if runtime in runtimes_for(path, name)]
                if chosen:
                    answers[environment, runtime] = probe_environment(environment, runtime,
                                                                      chosen, listed)
    host = environments[0]
    print(f"{len(images)} images of {args.test_folder}; against {host.name}")
    print("| file | where | runtime | top-1 agreement | max diff | int8 outputs against the "
          "same runtime here |")
    print("|---|---|---|---|---|---|")
    for name, path in files.items():
        reference = {}
        for (environment, runtime), found in answers.items():
            if not environment.emulated and "probabilities" in found.get(str(path), {}):
                reference.setdefault(runtime, np.array(found[str(path)]["probabilities"]))
        base = next(iter(reference.values()), None)
        for (environment, runtime), found in answers.items():
            answer = found.get(str(path))
            if not environment.emulated or answer is None:
                continue
            if "probabilities" not in answer:
                print(f"| {name} | {environment.name} | {runtime} | {answer.get('error')} "
                      "| | |")
                continue
            ours = np.array(answer["probabilities"])
            # Against the same runtime here where it is installed here, else the default one.
            theirs = reference.get(runtime, base)
            print(f"| {name} | {environment.name} | {runtime} "
                  f"| {np.mean(ours.argmax(1) == theirs.argmax(1)):.2%} "
                  f"| {np.abs(ours - theirs).max():.1e} "
                  f"| {_integer_outputs(ours, reference.get(runtime), name in integer)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
