"""The Modal image runs the versions the tests run: one pinned list, gpu/requirements.txt, plus what only the image
can install (gpu/requirements-image.txt: torchvision, a CUDA build).

- the image installs exactly those lists (and nothing else) on the Python that modal_app.py names;
- they resolve together, for the image's platform, to exactly their pins (a bad pin fails here, not at deploy);
- this test venv has the first list's versions (torch: the CPU build of the same version).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "gpu" / "requirements.txt"
IMAGE_REQUIREMENTS = REPO / "gpu" / "requirements-image.txt"  # the image only (CUDA builds)
NO_DEPS_REQUIREMENTS = REPO / "gpu" / "requirements-nodeps.txt"  # installed last, --no-deps (both places)

# Modal's debian_slim is Debian bookworm (glibc 2.36) for image builders 2024.04-2025.06 and trixie (2.41)
# after: wheels for glibc <= 2.36 install on both. pip matches each --platform tag exactly, so list them all.
IMAGE_GLIBC_MINOR = 36
IMAGE_PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(IMAGE_GLIBC_MINOR, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def pins(path: Path = REQUIREMENTS) -> dict[str, Version]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # one exact pin per line, nothing else
        assert spec.operator == "==", f"{line}: pin exact versions (==) in gpu/requirements.txt"
        out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def test_every_line_is_an_exact_pin():
    assert {"torch", "diffusers", "transformers", "boto3", "pydantic"} <= set(pins())
    assert set(pins(IMAGE_REQUIREMENTS)) == {"torchvision"}
    assert set(pins(NO_DEPS_REQUIREMENTS)) == {"invisible-watermark"}
    assert not set(pins()) & set(pins(IMAGE_REQUIREMENTS)), "a package is pinned in one list only"
    assert not set(pins()) & set(pins(NO_DEPS_REQUIREMENTS)), "a package is pinned in one list only"


def test_the_modal_image_installs_that_list_on_its_python():
    # Import the app with Modal's image builders recorded: what modal_app.py really asks Modal to build.
    probe = """
import json, sys
import modal

calls = []
def record(name, original, static=False):
    def wrapper(*args, **kwargs):
        calls.append([name, [str(a) for a in (args if static else args[1:])], sorted(kwargs)])
        return original(*args, **kwargs)
    return staticmethod(wrapper) if static else wrapper

for name in ("pip_install", "pip_install_from_requirements", "uv_pip_install", "pip_install_from_pyproject",
             "uv_sync", "run_commands", "apt_install", "micromamba_install"):
    setattr(modal.Image, name, record(name, getattr(modal.Image, name)))
for name in ("debian_slim", "from_registry", "micromamba"):
    setattr(modal.Image, name, record(name, getattr(modal.Image, name), static=True))

from gpu import modal_app
print(json.dumps({"calls": calls, "python": modal_app.PYTHON_VERSION}))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    from gpu import modal_app

    assert seen["calls"] == [
        ["debian_slim", [], ["python_version"]],
        ["pip_install_from_requirements", [str(REQUIREMENTS)], []],
        ["pip_install_from_requirements", [str(IMAGE_REQUIREMENTS)], []],
        ["pip_install_from_requirements", [str(NO_DEPS_REQUIREMENTS)], ["extra_options"]],
        # the attention kernels for the torch just installed (gpu/attention_kernels.py)
        ["run_commands", [f"python {modal_app.ATTENTION_KERNELS_IN_IMAGE}"], []],
    ]
    assert modal_app.PYTHON_VERSION == seen["python"]
    assert modal_app.REQUIREMENTS == REQUIREMENTS
    assert modal_app.IMAGE_REQUIREMENTS == IMAGE_REQUIREMENTS
    assert modal_app.NO_DEPS_REQUIREMENTS == NO_DEPS_REQUIREMENTS
    assert "--no-deps" in (REPO / "gpu" / "modal_app.py").read_text()


def test_the_image_ships_the_core_package_data():
    """add_local_python_source sends .py files only unless told otherwise: the catalog must travel too."""
    from gpu import modal_app

    data_files = [p for top in ("functions", "gpu") for p in (REPO / top).rglob("*.yaml")]
    assert any(p.name == "catalog.yaml" for p in data_files)
    for path in data_files:
        relative = path.relative_to(REPO / path.relative_to(REPO).parts[0])  # as Modal matches: in the package
        assert not modal_app.SOURCE_FILES_IGNORED(relative), relative
    assert not modal_app.SOURCE_FILES_IGNORED(Path("worker.py"))
    assert modal_app.SOURCE_FILES_IGNORED(Path("README.md"))


@pytest.mark.timeout(240)
def test_the_list_resolves_to_its_pins_for_the_image(tmp_path):
    """Resolved from the index's metadata, without installing, for Linux x86_64 and the image's Python.

    The index here serves no PEP 658 metadata files, so without fast-deps pip would download every wheel
    (torch's CUDA build alone is over 500 MB) just to read its METADATA; fast-deps reads it with HTTP
    range requests instead (a few MB in all), and pip prefers PEP 658 metadata wherever an index has it.
    The whole tree is resolved, torch's CUDA dependencies (nvidia-*) included.
    """
    from gpu import modal_app

    report = tmp_path / "report.json"
    platforms = [arg for tag in IMAGE_PLATFORMS for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
               "--use-feature=fast-deps", "--ignore-installed", "--only-binary=:all:", *platforms,
               "--python-version", modal_app.PYTHON_VERSION, "--implementation", "cp",
               "--target", str(tmp_path / "target"), "-r", str(REQUIREMENTS), "-r", str(IMAGE_REQUIREMENTS)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"gpu/requirements.txt with requirements-image.txt does not resolve for the image:\n{result.stderr[-4000:]}"

    installs = json.loads(report.read_text())["install"]
    resolved = {canonicalize_name(i["metadata"]["name"]): Version(i["metadata"]["version"]) for i in installs}
    wanted = pins() | pins(IMAGE_REQUIREMENTS)
    # torchvision's own pin on torch (==2.13.0 for 0.28.0) holds only if this resolves to both lists' versions.
    assert {name: resolved.get(name) for name in wanted} == wanted
    # PyPI's torch for Linux x86_64 is the CUDA build: the image gets its CUDA libraries with it.
    assert any(name.startswith("nvidia-") for name in resolved), sorted(resolved)
    # OpenCV's headless build only: the GUI build (what invisible-watermark declares) needs libGL, not in the image.
    assert "opencv-python" not in resolved and "opencv-python-headless" in resolved

    # The --no-deps list: each pin has a wheel for the image's platform and Python, and asks for nothing more
    # than the first list holds, except the GUI OpenCV that the headless build stands in for.
    nodeps_report = tmp_path / "nodeps.json"
    command = [*command[:command.index("--report") + 1], str(nodeps_report), *command[command.index("--report") + 2:
               command.index("-r")], "--no-deps", "-r", str(NO_DEPS_REQUIREMENTS)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"gpu/requirements-nodeps.txt does not resolve for the image:\n{result.stderr[-4000:]}"
    installs = json.loads(nodeps_report.read_text())["install"]
    assert {canonicalize_name(i["metadata"]["name"]): Version(i["metadata"]["version"]) for i in installs} == \
        pins(NO_DEPS_REQUIREMENTS)
    for install in installs:
        for line in install["metadata"].get("requires_dist", []):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"python_version": modal_app.PYTHON_VERSION}):
                name = canonicalize_name(req.name)
                assert name in resolved or name == "opencv-python", f"{install['metadata']['name']} needs {line}"


def test_the_test_venv_runs_the_image_pins():
    wanted = pins() | pins(NO_DEPS_REQUIREMENTS)
    installed = {name: Version(metadata.version(name)) for name in wanted}
    # Only torch's build differs: the CPU build here (2.13.0+cpu), the CUDA build in the image.
    assert {name: Version(v.public) for name, v in installed.items()} == wanted
