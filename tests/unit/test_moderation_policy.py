"""The moderation policy at submit (functions/core/moderation.py): levels, workspace limits, the prompt policy and
every dialect's mapping onto the one table; and the worker's frame sampling (gpu/moderation.py)."""

from __future__ import annotations

import pytest

from functions.core import moderation
from functions.core.catalog import get_catalog
from functions.core.errors import Forbidden, ValidationFailed
from functions.core.settings import get_settings


@pytest.fixture
def policy(monkeypatch):
    """Set the workspace's policy for the next resolve (the unit suite's default is the most open one)."""
    def set_to(**fields):
        monkeypatch.setattr(moderation, "_read_policy", lambda workspace_id: moderation.WorkspacePolicy(**fields))
        moderation.clear_cache()
    return set_to


def resolve(level=None, checker=None, prompt="a lighthouse", prefix=""):
    return moderation.resolve(prompt, level, checker, workspace_id="ws", prefix=prefix)


def test_levels_map_to_the_catalog_thresholds_and_the_default_is_capped_by_the_workspace(policy):
    table = get_catalog().moderation
    policy()
    assert resolve() == {"level": table.default_level, "threshold": table.thresholds[table.default_level]}
    assert resolve(level=1) == {"level": 1, "threshold": table.thresholds[1]}
    assert resolve(level=table.workspace_max_level)["level"] == table.workspace_max_level
    policy(max_level=1)
    assert resolve() == {"level": 1, "threshold": table.thresholds[1]}


def test_more_than_the_workspace_allows_is_a_403_naming_the_field(policy):
    policy()
    with pytest.raises(Forbidden) as info:
        resolve(level=get_catalog().moderation.workspace_max_level + 1, prefix="input.")
    assert info.value.status == 403 and info.value.errors[0].field == "input.safety_tolerance"
    assert info.value.code == moderation.NOT_ALLOWED
    with pytest.raises(Forbidden) as info:
        resolve(checker=False)
    assert info.value.errors[0].field == "safety_checker"
    policy(allow_checker_off=True, max_level=6)
    assert resolve(level=6)["level"] == 6
    assert resolve(checker=False) == {"checker": False}
    assert resolve(checker=True)["level"] == get_catalog().moderation.default_level
    with pytest.raises(ValidationFailed):  # a level with the checker off would mean nothing
        resolve(level=3, checker=False)


def test_the_prompt_policy_matches_whole_words_in_any_case(policy):
    policy(blocked_terms=["forbidden fruit", "nope"])
    for prompt in ("A FORBIDDEN fruit", "forbidden\n fruit, ripe", "nope.", "well—nope"):
        with pytest.raises(ValidationFailed) as info:
            resolve(prompt=prompt, prefix="input.")
        assert info.value.errors[0].field == "input.prompt" and info.value.code == moderation.PROMPT_BLOCKED
    for prompt in ("forbidden fruits", "nopes", "a fruit forbidden"):
        resolve(prompt=prompt)
    with pytest.raises(ValueError):
        moderation.WorkspacePolicy(blocked_terms=["   "])


def test_the_threshold_setting_overrides_every_level(monkeypatch):
    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    assert {moderation.threshold(level) for level in range(1, 7)} == {0.0}


def test_the_dialects_switches_and_words(policy):
    table = get_catalog().moderation
    assert moderation.openai_level("auto") == table.openai["auto"] and moderation.openai_level(None) is None
    assert moderation.checker_input(None) == {}
    assert moderation.checker_input(False) == {"safety_checker": False}
    # The worker's reading of a job's parameters; a job from before moderation existed runs at the default.
    assert moderation.job_threshold({"moderation": {"checker": False}}) is None
    assert moderation.job_threshold({"moderation": {"level": 5, "threshold": 0.9}}) == 0.9
    assert moderation.job_threshold({}) == table.thresholds[table.default_level]


def test_the_policy_table_is_checked():
    from functions.core.catalog import ModerationPolicy

    base = get_catalog().moderation.model_dump()
    with pytest.raises(ValueError, match="never stricter"):
        ModerationPolicy.model_validate({**base, "thresholds": {**base["thresholds"], 6: 0.1}})
    with pytest.raises(ValueError, match="one per level"):
        ModerationPolicy.model_validate({**base, "thresholds": {1: 0.5}})


def test_video_frames_are_sampled_from_first_to_last():
    from gpu.moderation import sample_frames

    frames = list(range(97))
    assert sample_frames(frames, 8)[0] == 0 and sample_frames(frames, 8)[-1] == 96
    assert len(sample_frames(frames, 8)) == 8
    assert sample_frames(frames[:3], 8) == [0, 1, 2]
    assert sample_frames(frames, 1) == [0]
