"""The pip extra each heavy command (train, evaluate, convert, bench, pipeline, study) needs,
and a package it lacks reported as that extra to install instead of a traceback."""
from __future__ import annotations

# The pip extra each heavy command needs (README, "Install").
EXTRAS = {"train": "train", "evaluate": "train", "convert": "convert", "bench": "convert",
          "pipeline": "convert", "study": "convert"}
OUR_PACKAGES = ("edgekit", "edge_runtime")
# What the runtime alone can do instead, by command.
INSTEAD = {"bench": "; or measure the converted files alone, which needs only the runtime: "
                    "edgekit bench RUN_DIR/artifacts"}


def missing_package_message(command: str, error: ModuleNotFoundError) -> str | None:
    """The one-line error for a package a heavy command needs but this Python lacks (an
    install of the device runtime alone, say), or None when the error is not that."""
    package = (error.name or "").split(".")[0]
    if command not in EXTRAS or not package or package in OUR_PACKAGES:
        return None
    return (f"edgekit {command} needs {package}, which is not installed here: "
            f"pip install 'edgekit[{EXTRAS[command]}]'{INSTEAD.get(command, '')}")
