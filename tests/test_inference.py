"""Prediction from a checkpoint alone: the same answers as the run's own evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.fx
from PIL import Image
from torch import nn

import pixelwise
from pixelwise.card import ModelCard
from pixelwise.checkpoint import CheckpointError, save_checkpoint
from pixelwise.config import load_config
from pixelwise.data import build_datasets
from pixelwise.engine import evaluate_run, fit
from pixelwise.engine.build import build_model
from pixelwise.errors import UserError
from pixelwise.inference import (
    Classification,
    Compute,
    InputError,
    Segmentation,
    folded_for_inference,
)
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models import create_model
from pixelwise.tta import forward_logits, hflip_tta

QUIET = ["train.tensorboard=false", "train.report=false", "train.learning_gif=false"]


@pytest.fixture
def classifier_run(trained_digits):
    """The session's shared digits run (two epochs at 8x8; tests/conftest.py)."""
    return trained_digits.cfg, trained_digits.run_dir


@pytest.fixture(scope="module")
def segmenter_run(tmp_path_factory):
    """Digit canvases (32x32, 11 classes) with a narrow U-Net, one short epoch."""
    cfg = load_config(None, segmentation_overrides(tmp_path_factory.mktemp("seg")))
    return cfg, fit(cfg).run_dir


def segmentation_overrides(output_dir) -> list[str]:
    return [
        "name=digit-seg",
        "task=segmentation",
        f"output_dir={output_dir}",
        "data.format=digits_segmentation",
        "data.num_samples=60",
        "data.image_size=[32, 32]",
        "data.in_channels=1",
        "data.batch_size=8",
        "data.augment=none",
        "model.name=unet",
        "model.options={base_channels: 4}",
        "optim.lr=0.05",
        "train.epochs=1",
        *QUIET,
    ]


def raw_split(cfg, run_dir, split: str) -> tuple[list[torch.Tensor], list]:
    """A split's stored uint8 images and targets, before any transform."""
    raw = build_datasets(cfg, run_dir).datasets[split].raw
    items = [raw[i] for i in range(len(raw))]
    return [image.as_subclass(torch.Tensor) for image, _ in items], [t for _, t in items]


# --------------------------------------------------------------------------- round trips
def test_classifier_predictions_match_the_run_evaluation(classifier_run, tmp_path):
    cfg, run_dir = classifier_run
    evaluated = evaluate_run(run_dir, split="test", write=False)
    images, labels = raw_split(cfg, run_dir, "test")

    predictor = pixelwise.load(run_dir, device="cpu", precision="float32")
    results = predictor.predict(images, topk=3, batch_size=50)
    matrix = ConfusionMatrix(10)
    matrix.update(torch.tensor([r.indices[0] for r in results]), torch.tensor(labels))
    assert torch.equal(matrix.matrix, evaluated.matrix)

    first = results[0]
    assert isinstance(first, Classification)
    assert len(first.labels) == 3 and first.label == str(first.indices[0])
    assert first.probabilities == sorted(first.probabilities, reverse=True)

    # The same images as PNG files, read back from disk, give the same answers.
    paths = []
    for i, image in enumerate(images[:12]):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(image[0].numpy()).save(paths[-1])
    from_files = predictor.predict([str(p) for p in paths], topk=3)
    assert [r.indices for r in from_files] == [r.indices for r in results[:12]]


def test_segmenter_predictions_match_the_run_evaluation(segmenter_run):
    cfg, run_dir = segmenter_run
    evaluated = evaluate_run(run_dir, split="test", write=False)
    images, masks = raw_split(cfg, run_dir, "test")

    results = pixelwise.load(run_dir / "checkpoints" / "best.pt", precision="float32").predict(
        images
    )
    assert all(isinstance(r, Segmentation) and r.mask.shape == (32, 32) for r in results)
    matrix = ConfusionMatrix(11)
    matrix.update(
        torch.from_numpy(np.stack([r.mask for r in results])).long(),
        torch.stack([m.as_subclass(torch.Tensor) for m in masks]).long(),
    )
    assert torch.equal(matrix.matrix, evaluated.matrix)


def test_sliding_window_predictions_match_the_run_evaluation(segmenter_run):
    """Canvases larger than the training size (44x37): windows of 32x32, as `eval` does."""
    cfg, run_dir = segmenter_run
    large = ["data.image_size=[44, 37]"]
    evaluated = evaluate_run(run_dir, "val", overrides=large, sliding_window=True, write=False)
    images, masks = raw_split(load_config(run_dir / "config.yaml", large), run_dir, "val")

    predictor = pixelwise.load(run_dir, precision="float32")
    assert predictor.preprocessing.window_size == (32, 32)
    results = predictor.predict(images, sliding_window=True)
    assert results[0].mask.shape == (44, 37)
    matrix = ConfusionMatrix(11)
    for result, mask in zip(results, masks):
        matrix.update(torch.from_numpy(result.mask).long(), mask.as_subclass(torch.Tensor).long())
    assert torch.equal(matrix.matrix, evaluated.matrix)


def test_segmentation_mask_and_probabilities_at_the_original_size(segmenter_run):
    _, run_dir = segmenter_run
    predictor = pixelwise.load(run_dir)
    image = np.random.default_rng(0).integers(0, 256, (45, 27), dtype=np.uint8)
    result = predictor.predict(image, return_probabilities=True)
    assert result.mask.shape == (45, 27) and result.mask.dtype == np.uint8
    assert result.probabilities.shape == (11, 45, 27)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(result.probabilities.argmax(axis=0), result.mask)
    assert abs(sum(result.class_fractions().values()) - 1.0) < 1e-9


# --------------------------------------------------------------------------- precision, TTA
def old_probabilities(predictor, images: list[torch.Tensor]) -> torch.Tensor:
    """Softmax as prediction computed it before batched preprocessing and precisions:
    each image through evaluation's v2 pipeline alone, then one float32 forward pass."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from pixelwise.data.transforms import Resize

    prep = predictor.preprocessing
    steps = v2.Compose(
        [
            Resize(list(prep.resize), antialias=prep.antialias),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(prep.mean), list(prep.std)),
        ]
    )
    batch = torch.stack([steps(tv_tensors.Image(x)).as_subclass(torch.Tensor) for x in images])
    with torch.no_grad():
        return forward_logits(predictor.model, batch).softmax(dim=1)


def test_float32_gives_exactly_the_numbers_of_one_image_at_a_time(classifier_run):
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    generator = torch.Generator().manual_seed(0)
    images = images[:20] + [  # other sizes and float pixels, resized to 8x8 one by one
        torch.randint(0, 256, (1, 12, 9), dtype=torch.uint8, generator=generator),
        torch.rand(1, 5, 7, generator=generator),
        images[0].float() / 255,
    ]
    predictor = pixelwise.load(run_dir, device="cpu", precision="float32")
    results = predictor.predict(images, return_probabilities=True, batch_size=len(images))
    got = torch.from_numpy(np.stack([r.all_probabilities for r in results]))
    assert torch.equal(got, old_probabilities(predictor, images))


def test_bfloat16_agrees_with_float32_on_the_top_class(classifier_run):
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    exact = pixelwise.load(run_dir, device="cpu", precision="float32")
    fast = pixelwise.load(run_dir, device="cpu", precision="bfloat16")
    assert fast.compute == Compute(True, channels_last=True, fold_batchnorm=True)
    reference = exact.predict(images, topk=2)
    results = fast.predict(images, topk=2)
    for r, f in zip(reference, results):  # a different class only at a near-tie
        assert f.indices[0] == r.indices[0] or r.probabilities[0] - r.probabilities[1] < 0.02
        assert abs(f.probabilities[0] - r.probabilities[0]) < 0.02
    agree = sum(f.indices[0] == r.indices[0] for r, f in zip(reference, results))
    assert agree >= 0.95 * len(images)  # 267 of 270 on this two-epoch 8x8 model


def test_auto_precision_uses_bfloat16_only_where_the_device_computes_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: False)
    assert Compute.choose("auto", cpu) == Compute(False, channels_last=True, fold_batchnorm=True)
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: True)
    assert Compute.choose("auto", cpu) == Compute(True, channels_last=True, fold_batchnorm=True)
    assert Compute.choose("float32", cpu) == Compute(bfloat16=False, channels_last=False)
    user_model = Compute.choose("auto", cpu, zoo_model=False)  # may view its activations
    assert user_model == Compute(bfloat16=True, channels_last=False, fold_batchnorm=False)
    with pytest.raises(UserError, match=r"precision='fp8': use one of auto, float32, bfloat16"):
        Compute.choose("fp8", cpu)


def test_auto_float32_on_a_cpu_is_float32_in_another_layout(classifier_run, monkeypatch):
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: False)
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    exact = pixelwise.load(run_dir, device="cpu", precision="float32")
    auto = pixelwise.load(run_dir, device="cpu")
    for r, a in zip(
        exact.predict(images[:64], return_probabilities=True),
        auto.predict(images[:64], return_probabilities=True),
    ):
        np.testing.assert_allclose(a.all_probabilities, r.all_probabilities, atol=1e-5)


def test_channels_last_input_gets_channels_last_weights(classifier_run, monkeypatch):
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: False)
    _, run_dir = classifier_run

    def convolution_weights(predictor) -> list[torch.Tensor]:
        return [m.weight for m in predictor.model.modules() if isinstance(m, torch.nn.Conv2d)]

    auto = pixelwise.load(run_dir, device="cpu")
    exact = pixelwise.load(run_dir, device="cpu", precision="float32")
    assert auto.compute.channels_last and convolution_weights(auto)
    for weight in convolution_weights(auto):  # oneDNN need not reorder them per call
        assert weight.is_contiguous(memory_format=torch.channels_last)
    for weight in convolution_weights(exact):  # float32: evaluation's layout, untouched
        assert weight.is_contiguous()


def with_batchnorm_statistics(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with seeded BatchNorm statistics and shifts far from identity,
    so that folding them wrongly would show."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.bias.normal_(0.0, 0.1, generator=gen)
                if module.track_running_stats:
                    module.running_mean.normal_(0.0, 0.2, generator=gen)
                    module.running_var.uniform_(0.5, 1.5, generator=gen)
    return model.eval()


def called_norms(model: nn.Module) -> int:
    """BatchNorm layers a forward pass calls: those in the graph of a folded model."""
    if isinstance(model, torch.fx.GraphModule):
        modules = dict(model.named_modules())
        calls = [modules[n.target] for n in model.graph.nodes if n.op == "call_module"]
    else:
        calls = list(model.modules())
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in calls)


FOLDED_FAMILIES = {  # label: (model, options, input height and width): each way of building
    "cifar_fastnet": ("cifar_fastnet", {}, (32, 32)),  # BatchNorm after pooling and after conv
    "resnet20": ("resnet20", {}, (32, 32)),  # attributes conv1/bn1, a shortcut reading the input
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, (64, 64)),  # squeeze-excitation
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", {}, (64, 64)),  # channel split and shuffle
    "googlenet": ("googlenet", {"aux_logits": False}, (64, 64)),  # branches concatenated
    "vgg11_bn": ("vgg11_bn", {}, (64, 64)),  # a slice of its classifier made in forward
    "segnet_compact": ("segnet_compact", {}, (37, 53)),  # pooling indices, padded and cropped
    "unet": ("unet", {"base_channels": 8}, (37, 53)),
    "unet_on_resnet18": ("unet", {"encoder": "resnet18", "decoder_channels": [16] * 5}, (37, 53)),
    "deeplabv3_resnet50": ("deeplabv3_resnet50", {}, (33, 45)),  # ASPP's pooled branch resized
}


@pytest.mark.parametrize("label", list(FOLDED_FAMILIES))
def test_folding_batchnorm_keeps_each_family_s_outputs(label: str) -> None:
    name, options, (height, width) = FOLDED_FAMILIES[label]
    torch.manual_seed(0)
    model = with_batchnorm_statistics(create_model(name, num_classes=3, **options))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = folded_for_inference(model)
    assert folded is not model
    assert called_norms(folded) < called_norms(model)
    for size in ((height, width), (height + 8, width - 5)):  # no size baked in by tracing
        x = torch.randn(2, 3, *size)
        with torch.inference_mode():
            expected, got = model(x), folded(x)
        scale = expected.abs().max()
        torch.testing.assert_close(got / scale, expected / scale, atol=2e-5, rtol=0)
    for key, value in model.state_dict().items():  # the model itself is left as it was
        assert torch.equal(value, before[key]), key


class ConvAndNorm(nn.Module):
    """A convolution and a BatchNorm; each subclass calls them in its own way."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = nn.BatchNorm2d(3)


class ConvFeedsTwo(ConvAndNorm):
    """The convolution's output goes to the norm and to a shortcut: folding would change it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


class ConvCalledTwice(ConvAndNorm):
    """One convolution called twice, only once before the norm: its weights serve both."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) + self.conv(x)


class StandardizedConv(nn.Conv2d):
    """A convolution with a forward of its own (weight standardisation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / w.std(dim=(1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, self.bias)


class BranchesOnValues(ConvAndNorm):
    """Python control flow on a tensor's values: tracing cannot follow it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x)) if x.mean() > 0 else x


@pytest.mark.parametrize(
    "model",
    [
        ConvFeedsTwo(),
        ConvCalledTwice(),
        nn.Sequential(StandardizedConv(3, 3, 3), nn.BatchNorm2d(3)),
        nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3, track_running_stats=False)),
        BranchesOnValues(),
        create_model("unet_original", num_classes=2, base_channels=4),  # sizes in Python
        create_model("vit_tiny_cifar", num_classes=2),  # no BatchNorm at all
    ],
    ids=lambda m: type(m).__name__,
)
def test_what_cannot_be_folded_is_left_as_it_is(model: nn.Module) -> None:
    model = with_batchnorm_statistics(model)
    folded = folded_for_inference(model)
    assert folded is model or called_norms(folded) == called_norms(model)


def test_auto_predictions_fold_batchnorm_again_when_the_weights_change(classifier_run, monkeypatch):
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: False)
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    auto = pixelwise.load(run_dir, device="cpu")
    exact = pixelwise.load(run_dir, device="cpu", precision="float32")
    assert exact.forward_model is exact.model  # float32: the evaluation's numbers, unfolded
    batch = auto.prepare(images[:16])
    first = auto.logits(batch)
    assert called_norms(auto.forward_model) < called_norms(auto.model)
    torch.testing.assert_close(first, exact.logits(batch), atol=1e-5, rtol=0)
    with torch.no_grad():  # new statistics, in place: what the folded weights were made of
        for module in auto.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.add_(0.5)
        with torch.inference_mode():
            expected = auto.model(batch.contiguous(memory_format=torch.channels_last))
    changed = auto.logits(batch)
    assert not torch.allclose(changed, first, atol=1e-3)
    torch.testing.assert_close(changed, expected, atol=1e-5, rtol=0)
    conv = next(m for m in auto.model.modules() if isinstance(m, nn.Conv2d))
    conv.weight = nn.Parameter(conv.weight.detach() * 2)  # a new tensor, not changed in place
    with torch.inference_mode():
        expected = auto.model(batch.contiguous(memory_format=torch.channels_last))
    replaced = auto.logits(batch)
    assert not torch.allclose(replaced, changed, atol=1e-3)
    torch.testing.assert_close(replaced, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compiled_prediction_agrees_with_eager_at_every_batch_shape(classifier_run, monkeypatch):
    monkeypatch.setattr("pixelwise.inference.fast_bfloat16", lambda device: False)
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    images = images[:40]  # batches of 32 and 8: two shapes, two graphs
    eager = pixelwise.load(run_dir, device="cpu", precision="float32")
    for precision in ("float32", "auto"):  # auto: float32 on channels_last weights
        compiled = pixelwise.load(run_dir, device="cpu", precision=precision, compile=True)
        assert compiled.forward_model is not compiled.model  # the plain one stays for export
        for tta in (False, True):
            reference = eager.predict(images, return_probabilities=True, tta=tta)
            results = compiled.predict(images, return_probabilities=True, tta=tta)
            for r, c in zip(reference, results):  # BatchNorm folded: another order of sums
                np.testing.assert_allclose(c.all_probabilities, r.all_probabilities, atol=1e-5)


def test_a_compiler_failure_warns_once_and_predicts_uncompiled(classifier_run, monkeypatch, caplog):
    """No C++ compiler, or an operation inductor cannot freeze: the first forward pass
    of a compiled model fails; the predictor says so and goes on with the plain model."""
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    calls = []

    class FailsToCompile(torch.nn.Module):
        def forward(self, x):
            calls.append(len(x))
            cause = RuntimeError("CppCompileError: C++ compile error\ng++: not found")
            raise torch._dynamo.exc.BackendCompilerFailed(lambda *a: None, cause, None)

    monkeypatch.setattr("pixelwise.inference.compiled_for_inference", lambda m: FailsToCompile())
    predictor = pixelwise.load(run_dir, device="cpu", precision="float32", compile=True)
    reference = pixelwise.load(run_dir, device="cpu", precision="float32")
    with caplog.at_level("WARNING", logger="pixelwise"):
        results = predictor.predict(images[:40], return_probabilities=True)
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert warnings == [
        f"{predictor.source}: torch.compile failed (RuntimeError: CppCompileError: C++ "
        "compile error); predicting without compiling"
    ]
    assert calls == [32]  # tried once, never again
    assert predictor.forward_model is predictor.model
    expected = reference.predict(images[:40], return_probabilities=True)
    for r, e in zip(results, expected):
        assert np.array_equal(r.all_probabilities, e.all_probabilities)


def test_flip_tta_of_the_card_runs_only_when_asked(classifier_run, tmp_path):
    cfg, run_dir = classifier_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    checkpoint["card"]["preprocessing"]["tta_hflip"] = True  # as eval.tta_hflip writes it
    path = tmp_path / "tta.pt"
    save_checkpoint(checkpoint, path)
    predictor = pixelwise.load(path, device="cpu", precision="float32")
    assert predictor.preprocessing.tta_hflip
    images, _ = raw_split(cfg, run_dir, "test")
    batch = predictor.prepare(images[:16])

    def probabilities(**options) -> torch.Tensor:
        results = predictor.predict(images[:16], return_probabilities=True, **options)
        return torch.from_numpy(np.stack([r.all_probabilities for r in results]))

    with torch.no_grad():
        plain = forward_logits(predictor.model, batch).softmax(dim=1)
        flipped = hflip_tta(predictor.model, batch).softmax(dim=1)
    assert torch.equal(probabilities(), plain)
    assert torch.equal(probabilities(tta=True), flipped)
    assert not torch.equal(plain, flipped)


def test_a_batch_size_below_one_is_refused(classifier_run):
    _, run_dir = classifier_run
    with pytest.raises(UserError, match="batch_size=0: must be at least 1"):
        pixelwise.load(run_dir).predict(np.zeros((8, 8), np.uint8), batch_size=0)


# --------------------------------------------------------------------------- inputs
def test_every_input_form_gives_the_same_answer(classifier_run, tmp_path):
    cfg, run_dir = classifier_run
    images, _ = raw_split(cfg, run_dir, "test")
    predictor = pixelwise.load(run_dir)
    tensor = images[0]  # (1, 8, 8) uint8
    array = tensor[0].numpy()
    path = tmp_path / "digit.png"
    Image.fromarray(array).save(path)
    expected = predictor.predict(tensor).indices
    forms = [
        path,
        str(path),
        Image.fromarray(array),
        Image.fromarray(array).convert("RGB"),  # gray stored as colour is gray
        array,
        array[:, :, None],
        tensor.float() / 255,
        tensor[0],
    ]
    for form in forms:
        assert predictor.predict(form).indices == expected, type(form)
    batch = predictor.predict(torch.stack([tensor, tensor]))
    assert [r.indices for r in batch] == [expected, expected]
    assert [r.indices for r in predictor.predict([path, array])] == [expected, expected]


def test_bad_inputs_name_themselves(classifier_run, tmp_path):
    _, run_dir = classifier_run
    predictor = pixelwise.load(run_dir)
    with pytest.raises(InputError, match=r"image 1: has 5 channels"):
        predictor.predict([np.zeros((8, 8), np.uint8), torch.zeros(5, 8, 8, dtype=torch.uint8)])
    with pytest.raises(InputError, match="no such file"):
        predictor.predict(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        predictor.predict(text)
    with pytest.raises(InputError, match="uint16"):
        predictor.predict(np.zeros((8, 8), np.uint16))
    with pytest.raises(InputError, match=r"looks \(C, H, W\)"):
        predictor.predict(np.zeros((1, 8, 8), np.uint8))


def test_grayscale_is_repeated_for_an_rgb_model_and_alpha_dropped(tmp_path):
    cfg = load_config(None, ["data.in_channels=3", "data.image_size=[8, 8]"])
    path = tmp_path / "rgb.pt"
    torch.manual_seed(0)
    model = build_model(cfg, 4)
    save_checkpoint(
        {"model": model.state_dict(), "card": ModelCard.from_config(cfg, list("abcd")).to_dict()},
        path,
    )
    predictor = pixelwise.load(path)
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], axis=2)
    expected = predictor.predict(rgb, return_probabilities=True).all_probabilities
    for form in (gray, rgba, Image.fromarray(gray), Image.fromarray(rgba)):
        got = predictor.predict(form, return_probabilities=True).all_probabilities
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- safety
class CodeOnLoad:
    """Pickles as a call to ``exec``: loading it with full pickle runs the code."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_checkpoint_that_runs_code_is_refused(classifier_run, tmp_path):
    _, run_dir = classifier_run
    good = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({**good, "extra": CodeOnLoad(marker)}, path)

    with pytest.raises(CheckpointError, match=r"refused to load: unpickling it would call exec,"):
        pixelwise.load(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: full unpickling runs it
    assert marker.read_text() == "ran"


def test_a_checkpoint_without_a_card_is_refused(tmp_path):
    cfg = load_config(None, ["data.in_channels=1"])
    path = tmp_path / "bare.pt"
    save_checkpoint({"model": build_model(cfg, 10).state_dict()}, path)
    with pytest.raises(CheckpointError, match="no model card"):
        pixelwise.load(path)
    with pytest.raises(FileNotFoundError, match="no run directory or checkpoint"):
        pixelwise.load(tmp_path / "nothing")
