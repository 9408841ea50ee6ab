"""Where a model's weights live on the weights Volume, and how a finished download is recorded there.

The layout keeps every commit's files apart and never changes them once written:
- `<root>/<repo>/<commit>/` holds one commit of the repo (the files the catalog's allow_patterns select);
- `<root>/<repo>/<commit>/.darkroom-complete` is written last, so a download cut short is never loaded;
- `<root>/<repo>/refs/<revision>` names the commit a branch or tag resolved to, for catalog entries that are
  not pinned to a commit yet.

Why: a Modal memory snapshot restores the process as it was after loading, files included. Modal does not
refresh a snapshot when the Volume changes, and a restore whose files were rewritten or deleted breaks
(Modal's memory snapshot guide). With one directory per commit, a new download never touches the files an
existing snapshot was taken with; a new commit is a new pool (ModelSpec.weights names the revision), and the
download says when a branch moved, which a redeploy picks up.

Import-light: no torch, no huggingface_hub (the deploy side reads these paths through Modal's Volume API).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from functions.core.catalog import COMMIT

# The Modal Volume the weights live on (gpu/modal_app.py mounts it; the deploy checks it before warming pools).
WEIGHTS_VOLUME = "darkroom-weights"
COMPLETE = ".darkroom-complete"
REFS = "refs"


class WeightsMissing(RuntimeError):
    """The Volume has no complete download of these weights: every job of the model would fail to load."""


def commit_path(repo: str, commit: str) -> PurePosixPath:
    """The commit's directory, relative to the Volume's root."""
    return PurePosixPath(repo) / commit


def marker_path(repo: str, commit: str) -> PurePosixPath:
    return commit_path(repo, commit) / COMPLETE


def ref_path(repo: str, revision: str) -> PurePosixPath:
    return PurePosixPath(repo) / REFS / revision


def is_commit(revision: str) -> bool:
    return bool(COMMIT.fullmatch(revision))


def recorded_commit(root: Path, repo: str, revision: str) -> str | None:
    """The commit `revision` stands for on this Volume: itself if it is one, else what the download recorded."""
    if is_commit(revision):
        return revision
    ref = root / ref_path(repo, revision)
    return ref.read_text().strip() if ref.is_file() else None


def resolve(root: Path, repo: str, revision: str, *, model: str = "") -> Path:
    """The directory to load `repo` at `revision` from. WeightsMissing, saying how to fix it, unless a complete
    download of that commit is there."""
    commit = recorded_commit(root, repo, revision)
    if commit is None or not (root / marker_path(repo, commit)).is_file():
        what = f"{model} ({repo}@{revision})" if model else f"{repo}@{revision}"
        raise WeightsMissing(f"the weights of {what} are not on the weights Volume"
                             f"{'' if commit is None else ' (download incomplete)'}: run "
                             f"`darkroom deploy --download-weights {model or 'all'}`")
    return root / commit_path(repo, commit)


def mark_complete(root: Path, repo: str, revision: str, commit: str, files: list[str]) -> None:
    """Written after the last file: from now on the commit's directory loads, and is never changed."""
    (root / marker_path(repo, commit)).write_text(json.dumps({"repo": repo, "revision": revision,
                                                              "commit": commit, "files": sorted(files)}))


def point(root: Path, repo: str, revision: str, commit: str) -> str | None:
    """Record that the branch `revision` is `commit` now. Returns the commit it named before, if it moved."""
    if is_commit(revision):
        return None
    ref = root / ref_path(repo, revision)
    before = ref.read_text().strip() if ref.is_file() else None
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return before if before not in (None, commit) else None
