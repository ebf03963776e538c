"""DecodeImage + Preprocess (through build/preprocess_probe) against the Python references.

What they establish, on the shared real images (fruits-360-mini JPEGs, test-images BMPs) and
on files written here by Pillow:
- decoding equals Pillow's RGB exactly for JPEG (baseline, progressive, grayscale, CMYK),
  PNG (RGB, RGBA, L, P), BMP and WebP, and EXIF orientations 1..8 of JPEG, PNG and WebP
  equal ImageOps.exif_transpose; both use the same libjpeg-turbo 2.1.5 here;
- nearest/bilinear/area/bicubic resizing equals cv2.resize exactly (same OpenCV 4.6), for
  both resize policies, with torchvision's center-crop arithmetic;
- shorter_side_crop + pil_bilinear equals torchvision Resize + CenterCrop + ToTensor +
  Normalize on PIL images within 1 LSB (observed: exact);
- Keras "caffe" preprocessing (BGR, mean subtraction) equals a numpy version within 1e-5.
Each test prints the largest difference it saw (run with -s to read them). Every call
starts the probe afresh (~0.2 s, mostly loading OpenCV's libraries), so the default run
uses samples; the decode of all 250 fruit images is marked slow.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from torchvision import transforms

TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN = (103.939, 116.779, 123.68)
CV2_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
}


# --------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="session")
def probe(build_dir: Path) -> Path:
    path = build_dir / "preprocess_probe"
    if not path.is_file():
        pytest.skip(f"{path} not built (build the preprocess_probe target, "
                    "or set ORCHARD_BUILD_DIR)")
    return path


@pytest.fixture(scope="session")
def fruit_images(shared_dir: Path) -> list[Path]:
    root = shared_dir / "data" / "fruits-360-mini"
    images = sorted(root.glob("*/*/*.jpg"))
    assert len(images) == 250, f"expected the 250 fruits-360-mini JPEGs under {root}"
    return images


@pytest.fixture(scope="session")
def fruit_sample(fruit_images: list[Path]) -> list[Path]:
    """Every 10th fruit image: 25 images, all 5 classes, Training and Test."""
    return fruit_images[::10]


@pytest.fixture(scope="session")
def bmp_images(shared_dir: Path) -> list[Path]:
    images = sorted((shared_dir / "models" / "test-images").glob("*.bmp"))
    assert len(images) == 3
    return images


def decode(probe: Path, image: Path, tmp_path: Path) -> np.ndarray:
    out = tmp_path / "decoded.bin"
    result = subprocess.run(
        [str(probe), "--decode-only", "--image", str(image), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    width, height = map(int, result.stdout.split())
    return np.fromfile(out, dtype=np.uint8).reshape(height, width, 3)


def preprocess(probe: Path, image: Path, tmp_path: Path, *, width: int = 224, height: int = 224,
               resize: str = "stretch", crop_fraction: float = 0.875,
               interpolation: str = "bilinear", channel_order: str = "RGB", scale: float = 1.0,
               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> np.ndarray:
    out = tmp_path / "tensor.bin"
    args = [
        str(probe), "--image", str(image), "--out", str(out),
        "--width", str(width), "--height", str(height), "--resize", resize,
        "--crop-fraction", repr(crop_fraction), "--interpolation", interpolation,
        "--channel-order", channel_order, "--scale", repr(scale),
        "--mean", ",".join(map(repr, mean)), "--std", ",".join(map(repr, std)),
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return np.fromfile(out, dtype="<f4").reshape(3, height, width)


def pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def resized_geometry(width: int, height: int, target_w: int, target_h: int,
                     crop_fraction: float) -> tuple[int, int]:
    """torchvision 0.14 Resize(int(size / crop_fraction)) output size (w, h) for a PIL image."""
    size = int(min(target_w, target_h) / crop_fraction)
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop(img: np.ndarray, crop_w: int, crop_h: int) -> np.ndarray:
    """torchvision CenterCrop on an HWC array: zero-pad when smaller, then crop at
    int(round((size - crop) / 2.0))."""
    h, w = img.shape[:2]
    if crop_w > w or crop_h > h:
        pad_l = (crop_w - w) // 2 if crop_w > w else 0
        pad_t = (crop_h - h) // 2 if crop_h > h else 0
        pad_r = (crop_w - w + 1) // 2 if crop_w > w else 0
        pad_b = (crop_h - h + 1) // 2 if crop_h > h else 0
        img = np.pad(img, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)))
        h, w = img.shape[:2]
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return img[top:top + crop_h, left:left + crop_w]


def normalise(hwc: np.ndarray, scale: float, mean, std, bgr: bool = False) -> np.ndarray:
    """(px * scale - mean) / std in float32, CHW, as the engine's contract states."""
    x = hwc[..., ::-1] if bgr else hwc
    x = x.astype(np.float32) * np.float32(scale)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# --------------------------------------------------------------------------------------
# Decoding


def check_decode_matches_pil(probe, images, tmp_path):
    worst = 0.0
    for path in images:
        ours = decode(probe, path, tmp_path)
        ref = pil_rgb(path)
        worst = max(worst, max_abs(ours, ref))
        assert np.array_equal(ours, ref), path
    print(f"\nJPEG decode vs PIL, {len(images)} fruit images: max |diff| = {worst}")


def test_decode_matches_pil_on_fruit_sample(probe, fruit_sample, tmp_path):
    check_decode_matches_pil(probe, fruit_sample, tmp_path)


@pytest.mark.slow
def test_decode_matches_pil_on_all_fruit_jpegs(probe, fruit_images, tmp_path):
    check_decode_matches_pil(probe, fruit_images, tmp_path)


def test_decode_matches_pil_on_bmps(probe, bmp_images, tmp_path):
    for path in bmp_images:
        assert np.array_equal(decode(probe, path, tmp_path), pil_rgb(path)), path


def test_decode_matches_pil_on_encodings_written_by_pil(probe, fruit_sample, tmp_path):
    """Pillow writes each variant; our decode must equal Pillow's convert("RGB")."""
    with Image.open(fruit_sample[3]) as im:
        rgb = im.convert("RGB")
    rgb = rgb.resize((rgb.width // 2, rgb.height // 2))
    alpha = Image.linear_gradient("L").resize(rgb.size)
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    variants = {
        "progressive.jpg": (rgb, {"progressive": True, "quality": 85}),
        "gray.jpg": (rgb.convert("L"), {"quality": 90}),
        "cmyk.jpg": (rgb.convert("CMYK"), {"quality": 95}),
        "444.jpg": (rgb, {"subsampling": 0, "quality": 92}),
        "422.jpg": (rgb, {"subsampling": 1, "quality": 92}),
        "rgb.png": (rgb, {}),
        "rgba.png": (rgba, {}),
        "gray.png": (rgb.convert("L"), {}),
        "palette.png": (rgb.convert("P"), {}),
        "rgb.bmp": (rgb, {}),
        "lossless.webp": (rgb, {"lossless": True}),
    }
    worst = {}
    for name, (image, options) in variants.items():
        path = tmp_path / name
        image.save(path, **options)
        ours = decode(probe, path, tmp_path)
        ref = pil_rgb(path)
        worst[name] = max_abs(ours, ref)
    print(f"\ndecode vs PIL on PIL-written files, max |diff|: {worst}")
    assert all(v == 0 for v in worst.values()), worst


def test_lossy_webp_matches_pil(probe, fruit_sample, tmp_path):
    # Both sides call the same libwebp (Pillow asks it for RGB, OpenCV for BGR).
    path = tmp_path / "lossy.webp"
    with Image.open(fruit_sample[5]) as im:
        im.convert("RGB").save(path, quality=80)
    diff = max_abs(decode(probe, path, tmp_path), pil_rgb(path))
    print(f"\nlossy WebP decode vs PIL: max |diff| = {diff}")
    assert diff == 0


@pytest.mark.parametrize("suffix", ["jpg", "png", "webp"])
def test_exif_orientation_matches_pil_exif_transpose(probe, fruit_sample, tmp_path, suffix):
    with Image.open(fruit_sample[0]) as im:
        rgb = im.convert("RGB").resize((90, 60))  # non-square, so a wrong rotation shows
    options = {"jpg": {"quality": 95}, "png": {}, "webp": {"lossless": True}}[suffix]
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.{suffix}"
        rgb.save(path, exif=exif.tobytes(), **options)
        with Image.open(path) as im:
            assert im.getexif().get(0x0112) == orientation
            ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        ours = decode(probe, path, tmp_path)
        assert ours.shape == ref.shape, orientation
        assert np.array_equal(ours, ref), orientation


def test_probe_reports_errors_in_one_line(probe, tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("hello, world\n")
    result = subprocess.run([str(probe), "--decode-only", "--image", str(bad), "--out",
                             str(tmp_path / "x")], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "unsupported" in result.stderr and "content starts with" in result.stderr


# --------------------------------------------------------------------------------------
# Resizing with OpenCV interpolations: identical to cv2.resize


@pytest.mark.parametrize("interpolation", list(CV2_INTERPOLATIONS))
def test_opencv_interpolations_match_cv2_exactly(probe, fruit_sample, bmp_images, tmp_path,
                                                 interpolation):
    flag = CV2_INTERPOLATIONS[interpolation]
    cases = [  # (resize policy, width, height, crop fraction)
        ("stretch", 224, 224, 0.875),
        ("stretch", 160, 120, 0.875),
        ("shorter_side_crop", 224, 224, 0.875),
        ("shorter_side_crop", 299, 299, 1.0),
        ("shorter_side_crop", 224, 160, 0.875),  # non-square: zero padding on the sides
    ]
    for path in fruit_sample[::8] + bmp_images[:1]:
        rgb = pil_rgb(path)
        h, w = rgb.shape[:2]
        for resize, tw, th, fraction in cases:
            if resize == "stretch":
                rw, rh = tw, th
            else:
                rw, rh = resized_geometry(w, h, tw, th, fraction)
            resized = rgb if (w, h) == (rw, rh) else cv2.resize(rgb, (rw, rh), interpolation=flag)
            ref = resized if resize == "stretch" else center_crop(resized, tw, th)
            ours = preprocess(probe, path, tmp_path, width=tw, height=th, resize=resize,
                              crop_fraction=fraction, interpolation=interpolation)
            assert np.array_equal(ours, normalise(ref, 1.0, (0, 0, 0), (1, 1, 1))), (
                path, resize, tw, th)
    # One normalised run: the float arithmetic is the same as numpy's float32 too.
    path = fruit_sample[1]
    rgb = pil_rgb(path)
    ref = cv2.resize(rgb, (224, 224), interpolation=flag)
    ours = preprocess(probe, path, tmp_path, interpolation=interpolation, scale=1 / 255,
                      mean=TORCH_MEAN, std=TORCH_STD)
    diff = max_abs(ours, normalise(ref, 1 / 255, TORCH_MEAN, TORCH_STD))
    print(f"\n{interpolation}: vs cv2.resize, max |diff| normalised = {diff}")
    assert diff == 0


# --------------------------------------------------------------------------------------
# torchvision on PIL images: shorter_side_crop + pil_bilinear


def torchvision_reference(path: Path, width: int, height: int, crop_fraction: float):
    """(resized uint8 HWC, normalised CHW float32) from torchvision's classic pipeline."""
    size = int(min(width, height) / crop_fraction)
    geometric = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop((height, width)),
    ])
    with Image.open(path) as im:
        cropped = geometric(im.convert("RGB"))
    tensor = transforms.Normalize(TORCH_MEAN, TORCH_STD)(transforms.ToTensor()(cropped))
    return np.asarray(cropped), tensor.numpy()


@pytest.mark.parametrize("width,height,crop_fraction", [
    (224, 224, 0.875), (299, 299, 0.875), (224, 224, 1.0), (224, 160, 0.875), (96, 128, 0.9),
])
def test_pil_bilinear_matches_torchvision(probe, fruit_sample, bmp_images, tmp_path, width,
                                          height, crop_fraction):
    worst_pixels = worst_tensor = 0.0
    mean = np.asarray(TORCH_MEAN)[:, None, None]
    std = np.asarray(TORCH_STD)[:, None, None]
    tolerance = 1 / 255 / std + 1e-6
    for path in fruit_sample[::3] + bmp_images:
        ref_pixels, ref_tensor = torchvision_reference(path, width, height, crop_fraction)
        tensor = preprocess(probe, path, tmp_path, width=width, height=height,
                            resize="shorter_side_crop", crop_fraction=crop_fraction,
                            interpolation="pil_bilinear", scale=1 / 255, mean=TORCH_MEAN,
                            std=TORCH_STD)
        # The uint8 pixels behind the tensor (float error is far below half a level).
        pixels = np.rint((tensor * std + mean) * 255)
        worst_pixels = max(worst_pixels, max_abs(pixels, ref_pixels.transpose(2, 0, 1)))
        worst_tensor = max(worst_tensor, max_abs(tensor, ref_tensor))
        assert np.all(np.abs(pixels - ref_pixels.transpose(2, 0, 1)) <= 1), path
        assert np.all(np.abs(tensor - ref_tensor) <= tolerance), path
    print(f"\npil_bilinear {width}x{height} crop {crop_fraction} vs torchvision: "
          f"max |diff| uint8 = {worst_pixels}, normalised = {worst_tensor:.3g}")


def test_pil_bilinear_stretch_matches_pil_resize(probe, fruit_sample, tmp_path):
    worst = 0.0
    for path in fruit_sample[::2]:
        with Image.open(path) as im:
            ref = np.asarray(im.convert("RGB").resize((200, 150), Image.BILINEAR))
        ours = preprocess(probe, path, tmp_path, width=200, height=150,
                          interpolation="pil_bilinear")
        worst = max(worst, max_abs(ours, ref.transpose(2, 0, 1)))
    print(f"\npil_bilinear stretch vs PIL resize: max |diff| = {worst}")
    assert worst <= 1


# --------------------------------------------------------------------------------------
# Keras "caffe" preprocessing (VGG16/ResNet50 in Keras): BGR, mean subtraction, no scaling


def test_keras_caffe_matches_numpy(probe, fruit_sample, bmp_images, tmp_path):
    worst = 0.0
    for path in fruit_sample[::4] + bmp_images:
        rgb = pil_rgb(path)
        resized = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_LINEAR)
        # keras.applications.imagenet_utils.preprocess_input(mode="caffe") on a float32
        # channels_last batch: RGB -> BGR, then x[..., i] -= mean[i] in float32, as Keras
        # does; then HWC -> CHW.
        x = resized[..., ::-1].astype(np.float32)
        for i, m in enumerate(CAFFE_MEAN):
            x[..., i] -= m
        ref = x.transpose(2, 0, 1)
        ours = preprocess(probe, path, tmp_path, interpolation="bilinear", channel_order="BGR",
                          mean=CAFFE_MEAN)
        worst = max(worst, max_abs(ours, ref))
    print(f"\nKeras caffe vs numpy float32: max |diff| = {worst:.3g}")
    assert worst <= 1e-5


def test_bgr_swaps_channels(probe, fruit_sample, tmp_path):
    path = fruit_sample[2]
    rgb = preprocess(probe, path, tmp_path, interpolation="area")
    bgr = preprocess(probe, path, tmp_path, interpolation="area", channel_order="BGR")
    assert np.array_equal(rgb[::-1], bgr)
    assert not math.isclose(float(np.abs(rgb[0] - rgb[2]).max()), 0.0)
