"""``list_models``: shell-style patterns as timm takes them, and no silent empty list."""

from __future__ import annotations

import pytest

from pixelwise.models import ModelError, list_models


def test_a_pattern_lists_a_family():
    names = list_models("resnet*")
    assert names and all(name.startswith("resnet") for name in names)
    assert "resnet18" in names and "resnet56" in names
    assert "unet" in list_models("*unet*") and "resnet18" not in list_models("*unet*")


def test_a_task_filters_alone_or_with_a_pattern():
    segmenters = list_models(task="segmentation")
    assert "unet" in segmenters and "resnet18" not in segmenters
    assert list_models("segmentation") == segmenters  # a task name in the pattern's place
    assert list_models("resnet*", task="segmentation") == []
    assert list_models("fcn*", task="segmentation") == sorted(
        n for n in segmenters if n.startswith("fcn")
    )
    assert set(list_models()) == set(segmenters) | set(list_models(task="classification"))


def test_an_unknown_task_is_refused_naming_the_tasks():
    with pytest.raises(
        ModelError, match="unknown task 'segmentaton'; tasks are: classification, segmentation"
    ):
        list_models(task="segmentaton")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("segmentaton", "did you mean task='segmentation'?"),
        ("resnet", "did you mean resnet"),
        ("resnet", "a pattern such as 'resnet*' lists a family"),
    ],
)
def test_a_name_without_wildcards_that_names_no_model_is_refused(name, hint):
    with pytest.raises(ModelError, match="no model is named") as err:
        list_models(name)
    assert hint in str(err.value)


def test_an_exact_name_lists_itself():
    assert list_models("resnet18") == ["resnet18"]
