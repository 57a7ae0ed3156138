"""The README documents every flag that ``edgekit COMMAND --help`` lists, and its usage
blocks name no flag a command does not take: docs that match the code."""
import re
from pathlib import Path

import pytest

from edgekit.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMANDS = build_parser()._subparsers._group_actions[0].choices


def usage_blocks(command: str) -> list[str]:
    """The README's indented ``edgekit COMMAND ...`` lines, each with its continuation lines."""
    lines = README.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if re.match(rf" {{4}}edgekit {command}\b", line):
            block = [line]
            for following in lines[index + 1:]:
                if not re.match(r" {8,}\S", following):
                    break
                block.append(following)
            blocks.append(" ".join(block))
    return blocks


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_flag_is_documented(command):
    flags = {flag for flag in COMMANDS[command]._option_string_actions
             if flag.startswith("--") and flag != "--help"}
    documented = set(re.findall(r"--[a-z][a-z0-9-]*", README))
    assert not flags - documented, f"edgekit {command}: not in the README"
    for block in usage_blocks(command):
        assert set(re.findall(r"--[a-z][a-z0-9-]*", block)) <= flags, block


def test_the_layout_names_every_module():
    layout = README.split("\n## Layout\n", 1)[1]
    repo = Path(__file__).resolve().parents[1]
    for package in ("edgekit", "train", "convert", "edge_runtime", "benchmarks"):
        line = re.search(rf"^- `{package}/`:(.*?)(?=^- |\Z)", layout, re.S | re.M).group(1)
        named = set(re.findall(r"`(\w+)`", line))
        modules = {path.stem for path in (repo / package).glob("*.py")} - {"__init__"}
        assert not modules - named, f"{package}/ modules the README's Layout does not name"
