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
