from __future__ import annotations

import pytest
import torch
from data_fixtures import make_config
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelwise.data.transforms import (
    Resize,
    ToNormalizedFloat,
    augmentation_for,
    build_transform,
)


def striped_pair(height: int = 24, width: int = 32, block: int = 8):
    """A mask of square blocks of classes 0..3 and an image whose red channel is
    40 * class: after any joint transform, red should still read the mask's class."""
    small = (
        torch.arange((height // block) * (width // block)).reshape(height // block, width // block)
        % 4
    )
    mask = small.repeat_interleave(block, 0).repeat_interleave(block, 1).to(torch.uint8)
    red = mask * 40
    image = torch.stack([red, torch.full_like(red, 100), torch.full_like(red, 50)])
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def agreement(image: torch.Tensor, mask: torch.Tensor, ignore: int = 255) -> float:
    """Share of labelled pixels inside a region (their 3x3 neighbourhood has one class;
    interpolation blurs the image only at edges) whose red value reads their class."""
    values = mask.long()[None, None].float()
    spread = torch.nn.functional.max_pool2d(values, 3, 1, 1) + torch.nn.functional.max_pool2d(
        -values, 3, 1, 1
    )
    inside = (spread[0, 0] == 0) & (mask.long() != ignore)
    inside[[0, -1], :] = False  # border pixels blend with what the crop cut off
    inside[:, [0, -1]] = False
    red = (image[0] * 255).round().long()
    error = (red[inside] - mask.long()[inside] * 40).abs()
    return float((error < 20).float().mean())


@pytest.mark.parametrize("augment", ["light", "default", "strong"])
def test_geometric_transforms_move_image_and_mask_together(augment):
    cfg = make_config(
        "segmentation", image_size=[24, 32], augment=augment, color_jitter=0.0, normalize=False
    )
    transform = build_transform(cfg.data, train=True, task="segmentation")
    torch.manual_seed(0)
    for _ in range(20):
        image, mask = transform(*striped_pair())
        assert image.shape[-2:] == mask.shape == (24, 32)
        assert image.dtype == torch.float32 and mask.dtype == torch.uint8
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3, 255}  # nearest: no new values
        assert agreement(image, mask) > 0.99


def test_horizontal_flip_is_exact_on_both():
    cfg = make_config(
        "segmentation", augment="none", hflip=1.0, image_size=[24, 32], normalize=False
    )
    image, mask = striped_pair()
    out_image, out_mask = build_transform(cfg.data, True, "segmentation")(image, mask)
    assert torch.equal(out_mask, mask.flip(-1))
    assert torch.equal((out_image * 255).round().to(torch.uint8), image.flip(-1))


def test_padding_fills_the_mask_with_ignore_index():
    cfg = make_config(
        "segmentation",
        augment="none",
        image_size=[24, 32],
        crop_size=[40, 40],
        ignore_index=77,
        normalize=False,
    )
    image, mask = build_transform(cfg.data, True, "segmentation")(*striped_pair())
    assert mask.shape == (40, 40)
    padded = mask == 77
    assert int(padded.sum()) == 40 * 40 - 24 * 32
    assert bool((image[:, padded] == 0).all())


def test_photometric_transforms_leave_the_mask_alone():
    cfg = make_config("segmentation", augment="none", color_jitter=0.8, image_size=[24, 32])
    transform = build_transform(cfg.data, True, "segmentation")
    image, mask = striped_pair()
    torch.manual_seed(1)
    out_image, out_mask = transform(image, mask)
    assert torch.equal(out_mask, mask)
    plain = build_transform(
        make_config("segmentation", augment="none", image_size=[24, 32]).data, True, "segmentation"
    )
    assert not torch.allclose(out_image, plain(image, mask)[0])


def test_eval_at_image_size_resizes_masks_with_nearest_neighbour():
    cfg = make_config("segmentation", image_size=[12, 16], eval_size="image_size")
    image, mask = build_transform(cfg.data, False, "segmentation")(*striped_pair())
    assert image.shape == (3, 12, 16) and mask.shape == (12, 16)
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}


def test_native_eval_keeps_each_image_size():
    cfg = make_config("segmentation", image_size=[12, 16], eval_size="native")
    image, mask = build_transform(cfg.data, False, "segmentation")(*striped_pair())
    assert image.shape == (3, 24, 32) and mask.shape == (24, 32)


def test_classification_presets_and_knobs():
    cfg = make_config(augment="default")
    steps = build_transform(cfg.data, True).transforms
    assert any(isinstance(s, v2.RandomCrop) and s.padding == [4, 4, 4, 4] for s in steps)
    assert any(isinstance(s, v2.RandomHorizontalFlip) for s in steps)
    assert augmentation_for(make_config(augment="default", hflip=0.0).data).hflip == 0.0
    strong = build_transform(make_config(augment="strong").data, True).transforms
    assert isinstance(strong[0], v2.RandomResizedCrop)
    none = build_transform(make_config(augment="none", normalize=False).data, True).transforms
    assert [type(s) for s in none] == [Resize, ToNormalizedFloat]
    with pytest.raises(ValueError, match="unknown preset"):
        augmentation_for(make_config(augment="wild").data)


def test_segmentation_default_preset_scales_then_crops():
    cfg = make_config("segmentation", image_size=[24, 32])
    kinds = [type(s) for s in build_transform(cfg.data, True, "segmentation").transforms]
    assert kinds[:3] == [Resize, v2.RandomResize, v2.RandomCrop]


def test_normalisation_uses_configured_statistics():
    cfg = make_config(augment="none", image_size=[2, 2], in_channels=1, mean=[0.5], std=[0.25])
    image = tv_tensors.Image(torch.full((1, 2, 2), 255, dtype=torch.uint8))
    out, label = build_transform(cfg.data, False)(image, 3)
    assert torch.allclose(out, torch.full((1, 2, 2), 2.0)) and label == 3


def test_to_normalized_float_matches_todtype_then_normalize():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 5, 6), dtype=torch.uint8))
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    reference = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    ours, mask = ToNormalizedFloat(mean, std)(image, tv_tensors.Mask(torch.ones(5, 6)))
    assert torch.allclose(ours, reference(image)) and type(mask) is tv_tensors.Mask
    assert torch.equal(image, image.clone())  # the uint8 input is left as it was


def test_resize_passes_through_images_already_at_size():
    image = tv_tensors.Image(torch.zeros(3, 4, 5, dtype=torch.uint8))
    assert Resize([4, 5])(image) is image
    assert Resize([8, 10])(image).shape == (3, 8, 10)


@pytest.mark.parametrize(
    "policy, kind",
    [
        ("randaugment", v2.RandAugment),
        ("trivialaugment", v2.TrivialAugmentWide),
        ("augmix", v2.AugMix),
    ],
)
def test_auto_augment_policies_change_the_uint8_image_before_normalising(policy, kind):
    cfg = make_config(augment="none", auto_augment=policy, image_size=[24, 32])
    transform = build_transform(cfg.data, True)
    kinds = [type(s) for s in transform.transforms]
    assert kinds == [Resize, kind, ToNormalizedFloat]
    image = tv_tensors.Image(torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8))
    plain = build_transform(make_config(augment="none", image_size=[24, 32]).data, True)
    torch.manual_seed(0)
    outputs = [transform(image, 1) for _ in range(4)]
    assert all(label == 1 and out.dtype == torch.float32 for out, label in outputs)
    assert any(not torch.equal(out, plain(image, 1)[0]) for out, _ in outputs)
    assert not any(isinstance(s, kind) for s in build_transform(cfg.data, False).transforms)


def test_random_erasing_sets_a_box_of_the_normalised_image_to_zero():
    cfg = make_config(augment="none", random_erasing=1.0, image_size=[24, 32])
    steps = build_transform(cfg.data, True).transforms
    assert isinstance(steps[-1], v2.RandomErasing) and steps[-1].p == 1.0
    image = tv_tensors.Image(torch.full((3, 24, 32), 200, dtype=torch.uint8))
    torch.manual_seed(0)
    out, _ = build_transform(cfg.data, True)(image, 0)
    erased = (out == 0).all(0)
    assert 0 < erased.float().mean() < 1


def test_photometric_distortion_changes_only_the_image():
    cfg = make_config(
        "segmentation", augment="none", photometric_distortion=1.0, image_size=[24, 32]
    )
    transform = build_transform(cfg.data, True, "segmentation")
    image, mask = striped_pair()
    torch.manual_seed(0)
    out_image, out_mask = transform(image, mask)
    assert torch.equal(out_mask, mask)
    plain = make_config("segmentation", augment="none", image_size=[24, 32])
    assert not torch.allclose(
        out_image, build_transform(plain.data, True, "segmentation")(image, mask)[0]
    )


@pytest.mark.parametrize(
    "task, data, key",
    [
        ("segmentation", {"auto_augment": "randaugment"}, "data.auto_augment"),
        ("segmentation", {"random_erasing": 0.25}, "data.random_erasing"),
        ("classification", {"random_erasing": 2.0}, "data.random_erasing"),
        ("classification", {"auto_augment": "augmix", "in_channels": 4}, "data.in_channels"),
        ("segmentation", {"rare_class_crop": 0.5}, "data.rare_classes"),
        ("segmentation", {"rare_class_crop": 1.5, "rare_classes": [1]}, "data.rare_class_crop"),
    ],
)
def test_augmentations_that_cannot_work_are_refused(task, data, key):
    from pixelwise.config import ConfigError

    with pytest.raises(ConfigError, match=key):
        make_config(task, **data)


def one_rare_pixel(height: int = 60, width: int = 80, at: tuple[int, int] = (55, 3), size: int = 1):
    """Class 0 everywhere, a ``size`` x ``size`` square of class 1 from ``at`` (red 255
    there, 0 elsewhere)."""
    square = (slice(at[0], at[0] + size), slice(at[1], at[1] + size))
    mask = torch.zeros(height, width, dtype=torch.uint8)
    mask[square] = 1
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[0][square] = 255
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def rare_share(cfg, draws: int = 200, **pair) -> float:
    """How many of ``draws`` training crops contain the rare pixel (mask and image agree)."""
    transform = build_transform(cfg.data, train=True, task="segmentation")
    torch.manual_seed(0)
    hits = 0
    for _ in range(draws):
        image, mask = transform(*one_rare_pixel(**pair))
        assert mask.shape == (16, 16)
        assert torch.equal(mask == 1, image[0] == 1.0)  # the crop moved both together
        hits += int((mask == 1).any())
    return hits / draws


def test_rare_class_crops_cover_the_rare_class_as_often_as_asked():
    crops = {"image_size": [60, 80], "crop_size": [16, 16], "augment": "none", "normalize": False}
    plain = rare_share(make_config("segmentation", **crops))
    always = rare_share(make_config("segmentation", **crops, rare_class_crop=1.0, rare_classes=[1]))
    half = rare_share(make_config("segmentation", **crops, rare_class_crop=0.5, rare_classes=[1]))
    assert plain < 0.1  # a 16x16 window over a corner pixel of 60x80: ~6% by chance
    assert always == 1.0
    assert 0.35 < half < 0.7


def test_rare_class_crops_respect_padding_and_random_scale():
    """Images smaller than the crop are padded first (mask with ignore_index); scaled
    images keep the rare pixel inside too."""
    cfg = make_config(
        "segmentation",
        image_size=[12, 12],
        crop_size=[16, 16],
        augment="none",
        normalize=False,
        rare_class_crop=1.0,
        rare_classes=[1],
    )
    assert rare_share(cfg, draws=50, height=12, width=12, at=(11, 0)) == 1.0
    scaled = make_config(
        "segmentation",
        image_size=[60, 80],
        crop_size=[16, 16],
        augment="default",  # random scale 0.5-2, then the crop
        hflip=0.0,
        normalize=False,
        rare_class_crop=1.0,
        rare_classes=[1],
    )
    transform = build_transform(scaled.data, train=True, task="segmentation")
    torch.manual_seed(0)
    for _ in range(50):
        _, mask = transform(*one_rare_pixel(at=(52, 3), size=4))
        assert (mask == 1).any()  # a 4x4 square survives scaling down to half


def test_rare_classes_by_name_and_their_errors():
    from pixelwise.config import ConfigError
    from pixelwise.data.transforms import RareClassCrop

    data = {"image_size": [60, 80], "crop_size": [16, 16], "augment": "none"}
    cfg = make_config("segmentation", **data, rare_class_crop=1.0, rare_classes=["pole", 3])
    transform = build_transform(
        cfg.data, True, "segmentation", class_names=["sky", "pole", "a", "b"]
    )
    crop = next(t for t in transform.transforms if isinstance(t, RareClassCrop))
    assert crop.classes.tolist() == [1, 3]
    with pytest.raises(ConfigError, match=r"no class named 'tree' \(the classes are sky, pole\)"):
        bad = make_config("segmentation", **data, rare_class_crop=1.0, rare_classes=["tree"])
        build_transform(bad.data, True, "segmentation", class_names=["sky", "pole"])
    with pytest.raises(ConfigError, match="index 5 is out of range"):
        bad = make_config("segmentation", **data, rare_class_crop=1.0, rare_classes=[5])
        build_transform(bad.data, True, "segmentation", class_names=["sky", "pole"])
    with pytest.raises(ConfigError, match="data.rare_class_crop places segmentation crops"):
        classes = make_config("classification", rare_class_crop=0.5, rare_classes=[1])
        build_transform(classes.data, True, "classification")
    for keys in ({"augment": "light"}, {"augment": "default", "random_resized_crop": True}):
        with pytest.raises(ConfigError, match="takes no RandomCrop"):
            none = make_config("segmentation", **keys, rare_class_crop=1.0, rare_classes=[1])
            build_transform(none.data, True, "segmentation")


def test_rare_classes_reach_the_training_split_by_the_datasets_own_names():
    from pixelwise.data import FormatDataset
    from pixelwise.data.transforms import RareClassCrop

    data = FormatDataset(
        "digits_segmentation",
        "train",
        num_samples=8,
        image_size=[32, 32],
        crop_size=[16, 16],
        rare_class_crop=1.0,
        rare_classes=["background", "3"],  # a name, and a number: always a mask index
    )
    crop = next(t for t in data.transform.transforms if isinstance(t, RareClassCrop))
    assert data.classes[:2] == ["background", "0"]
    assert crop.classes.tolist() == [0, 3]
    image, mask = data[0]
    assert image.shape[-2:] == mask.shape == (16, 16)
