"""The project as a newcomer meets it: a README that is a front page, docs that match the code
(every flag, every module), no development history in tracked files, nothing pointing outside
the repository, imports that point one way, and a wheel of one namespace."""
import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgekit.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = README + "".join(path.read_text() for path in sorted((REPO / "docs").glob("*.md")))
# Where each importable name of ours lives in the repository.
PACKAGE_DIRS = {"edgekit": "edgekit", "edgekit.train": "train", "edgekit.convert": "convert",
                "edgekit.benchmarks": "benchmarks", "edge_runtime": "edge_runtime"}
# Development history belongs in git: numbered work sessions, "since commit X", CI minutes.
HISTORY = re.compile(r"\bsessions? \d+|\b(since|before|until|after) (commit|session)\b"
                     r"|clean-clone CI|CI (figures|minutes|timings?) of", re.IGNORECASE)


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    files = []
    for name in names:
        path = REPO / name
        if path.is_file() and path.suffix not in (".png", ".jpg", ".npz", ".keras"):
            try:
                path.read_text()
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def test_the_readme_is_a_front_page():
    assert len(README.splitlines()) <= 300
    # The two commands: install + main job, and the tests.
    assert 'pip install -e ".[convert]" && edgekit pipeline' in README
    assert "python3 -m pytest -q -n auto --maxprocesses 4" in README
    for page, anchor in re.findall(r"\]\((docs/[\w.-]+\.md)(?:#([\w-]+))?\)", README):
        assert (REPO / page).is_file(), page
        headings = re.findall(r"^#+ (.+)$", (REPO / page).read_text(), re.M)
        # GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
        slugs = {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
                 for heading in headings}
        assert not anchor or anchor in slugs, f"{page}#{anchor}"


def test_no_tracked_file_tells_development_history():
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in tracked_text_files() if path.name != "test_project.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if HISTORY.search(line)]
    assert not found, "\n".join(found)


def test_history_phrases_are_recognised():
    # The check above must be able to fail: the phrases it is there to catch.
    for phrase in ("measured in session 31", "Sessions 28 and 29", "before commit a9c8af0",
                   "since session 17", "the clean-clone CI figures"):
        assert HISTORY.search(phrase), phrase
    for phrase in ("ONNX Runtime's session entry", "commit 242cc5c, on a 2-core AMD EPYC"):
        assert not HISTORY.search(phrase), phrase


def test_nothing_points_outside_the_repository_but_the_example_data():
    found = [f"{path.relative_to(REPO)}: {match}" for path in tracked_text_files()
             for match in re.findall(r"\.\./shared/?[\w./-]*", path.read_text())
             if not re.fullmatch(r"\.\./shared(/datasets[\w./-]*)?", match)]
    assert not found, "\n".join(found)


def test_our_code_reads_no_private_argparse_attributes():
    # The commands turn flags into settings through argparse's public interface only.
    private = re.compile(r"\.(_actions|_subparsers|_option_string_actions|_group_actions"
                         r"|_action_groups)\b")
    found = [f"{path.relative_to(REPO)}: {line.strip()}"
             for folder in (*PACKAGE_DIRS.values(), "tools")
             for path in sorted((REPO / folder).rglob("*.py"))
             for line in path.read_text().splitlines() if private.search(line)]
    assert not found, "\n".join(found)


def test_there_is_a_license_and_a_changelog():
    assert "Apache-2.0" in (REPO / "pyproject.toml").read_text()
    assert "Apache License" in (REPO / "LICENSE").read_text()
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")


def usage_blocks(command: str) -> list[str]:
    """The docs' indented ``edgekit COMMAND ...`` lines, each with its continuation lines."""
    lines = DOCS.splitlines()
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


def command_flags() -> dict[str, set[str]]:
    """Each subcommand's long flags, read from its --help text."""
    names = re.findall(r"^    (\w+) ", build_parser().format_help(), re.M)
    flags = {}
    for name in names:
        help_text = subprocess.run([sys.executable, "-m", "edgekit.cli", name, "--help"],
                                   capture_output=True, text=True, cwd=REPO).stdout
        flags[name] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text)) - {"--help"}
    return flags


@pytest.fixture(scope="module")
def flags_of_commands() -> dict[str, set[str]]:
    return command_flags()


def test_the_docs_name_every_flag_and_no_other(flags_of_commands):
    assert set(flags_of_commands) == {"train", "evaluate", "convert", "check", "classify",
                                      "camera", "bench", "compare", "pipeline", "study"}
    documented = set(re.findall(r"--[a-z][a-z0-9-]*", DOCS))
    for command, flags in flags_of_commands.items():
        assert not flags - documented, f"edgekit {command}: not in README.md or docs/"
        for block in usage_blocks(command):
            assert set(re.findall(r"--[a-z][a-z0-9-]*", block)) <= flags, block


def test_the_design_page_names_every_module():
    design = (REPO / "docs" / "design.md").read_text().split("\n## Modules\n", 1)[1]
    for folder in ("edgekit", "edgekit/common", "train", "convert", "edge_runtime", "benchmarks",
                   "tools"):
        entry = re.search(rf"^- `{folder}/`(.*?)(?=^- |\Z)", design, re.S | re.M).group(1)
        named = set(re.findall(r"`(\w+)`", entry))
        modules = {path.stem for path in (REPO / folder).glob("*.py")} - {"__init__"}
        assert not modules - named, f"{folder}/ modules docs/design.md does not name"


def module_imports() -> dict[str, set[str]]:
    """Each of our modules (by its installed name) and the modules of ours it imports, at the
    top or inside a function."""
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [part for part in path.relative_to(REPO / folder).with_suffix("").parts
                     if part != "__init__"]
            modules[".".join([package, *parts])] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                named |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                    if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                named |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        imported = set()
        for target in named:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                imported.add(target)
        graph[name] = imported
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# The layers from the bottom up: a module may import its own layer and the ones below.
LAYERS = ("edge_runtime", "edgekit.common", "edgekit.train", "edgekit.convert",
          "edgekit.benchmarks", "edgekit")


def layer(module: str) -> int:
    """The index in LAYERS of the most specific layer ``module`` belongs to."""
    matching = [prefix for prefix in LAYERS
                if module == prefix or module.startswith(prefix + ".")]
    return LAYERS.index(max(matching, key=len))


def test_imports_point_one_way_and_import_no_circle():
    # Imports inside functions count: a circle of lazy imports is still two modules that
    # cannot be read or changed apart.
    graph = module_imports()
    upward = [f"{name} -> {target}" for name, targets in graph.items() for target in targets
              if layer(target) > layer(name)]
    assert not upward, "\n".join(upward)
    assert cycles(graph) == []


@pytest.mark.slow
def test_the_wheel_installs_one_namespace(tmp_path, source_copy):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(source_copy)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("edgekit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"edgekit", "edge_runtime"}
    for module in ("edgekit/train/run.py", "edgekit/convert/cli.py",
                   "edgekit/benchmarks/bench.py", "edgekit/common/atomic.py",
                   "edge_runtime/classifier.py"):
        assert module in names
    assert not [name for name in names if name.startswith(("tools/", "tests/"))]
