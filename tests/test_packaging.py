"""The project's files agree: pyproject.toml with environment.yml and .ci/run, the README with
the Makefile.

Nothing here imports minibull; these checks read files only.
"""

import re
import subprocess
from pathlib import Path

import pytest

# requires-python is >=3.10, and tomllib joined the standard library in 3.11.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent

# pyproject name -> conda-forge name, where they differ.
CONDA_NAMES = {"redis": "redis-py"}
# An extra that pulls in a package of its own; fakeredis pins lupa's bound itself.
EXTRA_PACKAGES = {("fakeredis", "lua"): {"lupa": None}}
# Groups of pyproject that environment.yml mirrors (core is `dependencies`).
MIRRORED_EXTRAS = ("course", "test")
# In environment.yml but not a dependency of the package.
CONDA_ONLY = {"python", "pip"}

PIP_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[([A-Za-z0-9_,.-]+)\])?\s*(?:>=\s*([\w.]+))?$")
CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)\s*(?:(>=|=)\s*([\w.]+))?$")

Bounds = dict[str, str | None]


def normalise(name: str) -> str:
    """Return a package name in PEP 503 form (lower case, runs of -_. as one dash)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def add_bound(bounds: Bounds, name: str, bound: str | None) -> None:
    """Record `name >= bound`, refusing two different bounds for one package."""
    if name in bounds and bounds[name] != bound:
        raise ValueError(f"{name} has two lower bounds: {bounds[name]} and {bound}")
    bounds[name] = bound


def pip_bounds(requirements: list[str]) -> Bounds:
    """Map pyproject requirements to {conda name: lower bound}, extras expanded."""
    bounds: Bounds = {}
    for requirement in requirements:
        match = PIP_REQUIREMENT.match(requirement.strip())
        if match is None:
            raise ValueError(f"cannot read requirement {requirement!r}: use `name>=version`")
        name, extras, bound = normalise(match[1]), match[2], match[3]
        add_bound(bounds, CONDA_NAMES.get(name, name), bound)
        for extra in extras.split(",") if extras else []:
            key = (name, normalise(extra))
            if key not in EXTRA_PACKAGES:
                raise ValueError(f"no conda mapping for {name}[{extra}]: add it to EXTRA_PACKAGES")
            for package, package_bound in EXTRA_PACKAGES[key].items():
                add_bound(bounds, package, package_bound)
    return bounds


def conda_bounds(specs: list[str]) -> Bounds:
    """Map conda specs to {name: lower bound}, leaving out python and pip."""
    bounds: Bounds = {}
    for spec in specs:
        match = CONDA_SPEC.match(spec.strip())
        if match is None:
            raise ValueError(f"cannot read conda spec {spec!r}: use `name>=version`")
        name = normalise(match[1])
        if name in CONDA_ONLY:
            continue
        if match[2] == "=":
            raise ValueError(f"{spec!r} pins a version: use `{name}>={match[3]}`")
        add_bound(bounds, name, match[3])
    return bounds


def parse_environment(text: str) -> tuple[list[str], list[str]]:
    """Return (conda specs, pip specs) from an environment.yml of the simple shape we use."""
    conda: list[str] = []
    pip: list[str] = []
    in_dependencies = False
    pip_indent: int | None = None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_dependencies = line == "dependencies:"
            continue
        if not in_dependencies or not line.lstrip().startswith("- "):
            continue
        item = line.lstrip()[2:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(item)
        elif item == "pip:":
            pip_indent = indent
        else:
            pip_indent = None
            conda.append(item)
    return conda, pip


def compare(expected: Bounds, actual: Bounds) -> list[str]:
    """List how `actual` (environment.yml) differs from `expected` (pyproject.toml)."""
    problems = [f"{name} is missing from environment.yml" for name in expected.keys() - actual]
    problems += [
        f"{name} is in environment.yml, not pyproject.toml" for name in actual.keys() - expected
    ]
    problems += [
        f"{name}: pyproject.toml says >={expected[name]}, environment.yml says >={actual[name]}"
        for name in expected.keys() & actual
        if expected[name] != actual[name]
    ]
    return sorted(problems)


def mirrored_requirements() -> list[str]:
    """The core, course and test requirements of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project["dependencies"] + [r for extra in MIRRORED_EXTRAS for r in extras[extra]]


def test_environment_yml_matches_pyproject() -> None:
    conda, _ = parse_environment((ROOT / "environment.yml").read_text())
    assert compare(pip_bounds(mirrored_requirements()), conda_bounds(conda)) == []


def test_environment_yml_installs_the_repo_editable() -> None:
    _, pip = parse_environment((ROOT / "environment.yml").read_text())
    assert pip == ["-e ."]


def test_compare_reports_every_kind_of_mismatch() -> None:
    expected = pip_bounds(["redis>=5.0", "fakeredis[lua]>=2.26", "pytest>=8.0"])
    conda, pip = parse_environment(
        "name: x\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - redis-py>=4.0  # too low\n"
        "  - fakeredis>=2.26\n"
        "  - lupa\n"
        "  - numpy\n"
        "  - pip\n"
        "  - pip:\n"
        "      - -e .\n"
    )
    assert pip == ["-e ."]
    assert compare(expected, conda_bounds(conda)) == [
        "numpy is in environment.yml, not pyproject.toml",
        "pytest is missing from environment.yml",
        "redis-py: pyproject.toml says >=5.0, environment.yml says >=4.0",
    ]


@pytest.mark.parametrize("requirement", ["redis==5.0", "redis>=5.0; python_version<'3.11'"])
def test_unreadable_requirement_is_refused(requirement: str) -> None:
    with pytest.raises(ValueError, match="cannot read requirement"):
        pip_bounds([requirement])


def test_readme_commands_are_makefile_targets() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    commands = set(re.findall(r"(?:^|`)make ([\w-]+)", readme, flags=re.MULTILINE))
    targets = {
        target
        for rule in re.findall(r"^([\w./ -]+?)\s*:(?!=)", makefile, flags=re.MULTILINE)
        for target in rule.split()
    }
    assert {"lab", "test"} <= commands
    assert commands - targets == set()


# fakeredis modules minibull imports that are not its public API -> the first release that
# has them (checked in the wheels of 2.26, 2.38, 2.39 and 2.40). The lower bound must
# reach them; the tests of the lowest versions (.ci/run) check the rest.
FAKEREDIS_PRIVATE_MODULES = {
    "fakeredis._msgs": "2.26",
    "fakeredis._commands": "2.26",
    "fakeredis._helpers": "2.26",
    "fakeredis.model": "2.26",
    "fakeredis.commands_mixins": "2.26",
    "fakeredis._socket": "2.39",
    "fakeredis._clients._async": "2.39",
    "fakeredis._clients._sync": "2.39",
    "fakeredis._clients._tcp_server": "2.39",
}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def lower_bounds() -> Bounds:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return pip_bounds(project["dependencies"])


def test_the_fakeredis_bound_has_every_private_module_minibull_imports() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "minibull").glob("*.py"))
    imported = set(re.findall(r"^\s*(?:from|import) (fakeredis\.[\w.]+)", source, re.MULTILINE))
    unknown = sorted(imported - FAKEREDIS_PRIVATE_MODULES.keys())
    assert unknown == [], f"add the first fakeredis release that has {unknown}"
    bound = version_tuple(lower_bounds()["fakeredis"] or "0")
    too_new = [m for m in imported if version_tuple(FAKEREDIS_PRIVATE_MODULES[m]) > bound]
    assert too_new == []


def test_ci_tests_the_lower_bounds_of_redis_fakeredis_and_croniter() -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0
    pins = subprocess.run(
        ["bash", "-c", "source .ci/run && lowest_pins"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    bounds = lower_bounds()
    expected = [f"redis=={bounds['redis-py']}", f"fakeredis[lua]=={bounds['fakeredis']}"]
    expected.append(f"croniter=={bounds['croniter']}")
    assert sorted(pins) == sorted(expected)
    assert ".venv-min/" in (ROOT / ".gitignore").read_text().split()


# Imported by a notebook, declared through another package that needs it.
PROVIDED_BY = {"ipython": "ipykernel"}


def notebook_imports() -> tuple[set[str], set[str]]:
    """(required, optional) top-level modules the notebooks import; optional ones sit in a
    ``try`` that catches ImportError. The standard library and minibull are left out."""
    import ast
    import json
    import sys

    required: set[str] = set()
    optional: set[str] = set()
    for notebook in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            tree = ast.parse("\n".join("" if s.lstrip()[:1] in "%!" else s for s in lines))
            guarded = {
                id(node)
                for handler in ast.walk(tree)
                if isinstance(handler, ast.Try) and catches_import_error(handler)
                for statement in handler.body
                for node in ast.walk(statement)
            }
            for node in ast.walk(tree):
                names = imported_modules(node)
                (optional if id(node) in guarded else required).update(names)
    leave_out = set(sys.stdlib_module_names) | {"minibull", "__future__"}
    return required - leave_out, optional - leave_out - required


def catches_import_error(node) -> bool:
    import ast

    caught = [h.type for h in node.handlers]
    names = {n.id for t in caught if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imported_modules(node) -> set[str]:
    import ast

    if isinstance(node, ast.Import):
        return {alias.name.split(".")[0] for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return {node.module.split(".")[0]}
    return set()


def distribution(module: str, installed: bool = True) -> str:
    """The PEP 503 name of the installed distribution that provides ``module``; for an
    optional import (``installed=False``: e.g. bullmq, installed only for the real-Redis
    pass) that is not installed here, the module's own name."""
    from importlib.metadata import packages_distributions

    found = packages_distributions().get(module)
    if not found and not installed:
        return normalise(module)
    assert found, f"a notebook imports {module!r}, which no installed distribution provides"
    name = normalise(found[0])
    return PROVIDED_BY.get(name, name)


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[\[<>=;]", r, maxsplit=1)[0]) for r in requirements}


def test_every_package_a_notebook_imports_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = requirement_names(project["dependencies"])
    required, optional = notebook_imports()
    assert "httpx" in required and "bullmq" in optional  # the scan sees what it must
    for group in ("course", "test"):  # `make lab` installs course; nbval needs test
        declared = core | requirement_names(extras[group])
        missing = sorted({distribution(m) for m in required} - declared)
        assert missing == [], f"notebooks import {missing}: add them to [{group}]"
    every_extra = core | {name for group in extras.values() for name in requirement_names(group)}
    assert sorted({distribution(m, installed=False) for m in optional} - every_extra) == []
    # environment.yml mirrors course and test: test_environment_yml_matches_pyproject.


def test_binder_has_the_conda_list_and_installs_the_package_and_the_lab_settings() -> None:
    conda, pip = parse_environment((ROOT / "environment.yml").read_text())
    binder_conda, binder_pip = parse_environment((ROOT / "binder" / "environment.yml").read_text())
    assert binder_conda == conda and binder_pip == []  # no `-e .`: the repo is not there yet
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.stat().st_mode & 0o111, "binder/postBuild must be executable"
    text = post_build.read_text()
    assert "pip install --no-deps -e ." in text and "lab-settings/overrides.json" in text
    assert subprocess.run(["bash", "-n", str(post_build)]).returncode == 0


def test_the_lab_settings_name_real_jupyterlab_settings() -> None:
    import json
    import sys

    overrides = json.loads((ROOT / "lab-settings" / "overrides.json").read_text())
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    if not schemas.is_dir():
        pytest.skip("JupyterLab is not installed here (the course extra)")
    for plugin, settings in overrides.items():
        package, _, name = plugin.partition(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        assert set(settings) <= set(schema["properties"]), plugin
    assert "--LabApp.app_settings_dir=$(CURDIR)/lab-settings" in (ROOT / "Makefile").read_text()


def test_the_binder_badge_opens_notebook_00() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(
        r"\(https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/\w+\?labpath=([^)]+)\)", readme
    )
    assert [link.replace("%2F", "/") for link in links] == ["notebooks/00_quickstart.ipynb"]
    assert (ROOT / "notebooks" / "00_quickstart.ipynb").exists()
