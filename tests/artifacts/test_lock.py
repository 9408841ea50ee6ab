"""What the builds install is what functions/requirements.txt locks (`make lock`), and the build cannot install
anything else: every distribution in every artifact built by `make build-<LogicalId>` (for the template's
target and for this host) is pinned there at the version it carries, and a lock that lacks a distribution or
pins another version stops the build, naming it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.build import artifacts, contents, lock

pytestmark = pytest.mark.xdist_group("artifacts")


def _every_build(target_artifacts, host_artifacts):
    for kind, built in (("target", target_artifacts), ("host", host_artifacts)):
        for logical_id, one in built.items():
            yield f"{logical_id} ({kind}: {one.artifact.target.runtime}, {one.artifact.target.architecture})", one


def test_every_distribution_in_every_artifact_is_locked_at_the_version_it_carries(target_artifacts, host_artifacts):
    locked = lock.read(artifacts.PINS)
    carried: dict[str, set[str]] = {}  # logical id -> what its builds carry, on either architecture
    problems = []
    for where, built in _every_build(target_artifacts, host_artifacts):
        installed = contents.versions(built.site)
        assert installed and len(installed) == len(list(built.site.glob("*.dist-info"))), where
        problems += lock.differences(installed, locked, where)
        carried.setdefault(built.artifact.logical_id, set()).update(installed)
    assert not problems, "built artifacts the lock does not pin:\n" + "\n".join(problems)
    # The lock's "via" names the artifacts that install each pin: exactly what their builds carry.
    for logical_id, names in carried.items():
        assert names == {name for name, pin in locked.pins.items() if logical_id in pin.via}, logical_id
    unused = set(locked.pins) - set().union(*carried.values())
    assert not unused, f"locked but in no artifact: {sorted(unused)}"


def _tampered(tmp_path: Path, edit) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(edit(artifacts.PINS.read_text()))
    return path


def _pin_block(name: str) -> re.Pattern:
    """The lines of one pin: name==version, its hashes, its via comment."""
    return re.compile(rf"^{re.escape(name)}==\S+ \\\n(?:    --hash=\S+(?: \\)?\n)+    # via .*\n", re.MULTILINE)


def _build_layer_with(pins, tmp_path, capfd) -> str:
    art = artifacts.artifact(artifacts.SDK_LAYER)
    with pytest.raises((subprocess.CalledProcessError, SystemExit)):
        artifacts.build(art, tmp_path / "layer", pins)
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_the_build_refuses_a_distribution_the_lock_does_not_pin(tmp_path, capfd):
    # jmespath comes with boto3 (botocore): a transitive dependency, not one the layer names.
    assert "jmespath" not in artifacts.SDK_REQUIREMENTS.read_text()
    pins = _tampered(tmp_path, lambda text: _pin_block("jmespath").sub("", text, count=1))
    assert "jmespath" not in lock.read(pins).pins
    output = _build_layer_with(pins, tmp_path, capfd)
    assert "must have their versions pinned with ==" in output and "jmespath" in output, output[-3000:]
    assert not list((tmp_path / "layer").rglob("*.dist-info")), "pip installed something anyway"


def test_the_build_refuses_a_version_or_a_wheel_other_than_the_locked_one(tmp_path, capfd):
    locked = lock.read(artifacts.PINS).pins["jmespath"].version
    assert locked != "1.0.1"
    pins = _tampered(tmp_path, lambda text: text.replace(f"\njmespath=={locked} ", "\njmespath==1.0.1 ", 1))
    assert lock.read(pins).pins["jmespath"].version == "1.0.1"
    output = _build_layer_with(pins, tmp_path, capfd)
    # The wheel pip found for 1.0.1 is not the one whose hash the lock holds.
    assert "DO NOT MATCH THE HASHES" in output and "jmespath==1.0.1" in output, output[-3000:]


def test_the_build_refuses_a_target_the_lock_was_not_made_for(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(artifacts.RUNTIME_ENV, "python3.99")
    with pytest.raises(SystemExit, match=r"locked for python3\.12-arm64, python3\.12-x86_64, not python3\.99-"):
        artifacts.build(artifacts.artifact(artifacts.SDK_LAYER), tmp_path / "layer")


def test_a_build_whose_result_differs_from_the_lock_names_what_differs(tmp_path):
    # pip in hash-checking mode cannot install what the lock lacks; the build checks its result anyway.
    locked = lock.read(artifacts.PINS)
    site = tmp_path / "site"
    for name, version in (("jmespath", locked.pins["jmespath"].version), ("jmespath-extra", "1.0"),
                          ("six", "0.1")):
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    assert lock.differences(contents.versions(site), locked, "a build") == [
        "jmespath-extra 1.0 (a build) is not pinned in the lock",
        f"six: a build has 0.1, the lock pins {locked.pins['six'].version}"]
