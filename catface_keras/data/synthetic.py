"""Procedural synthetic faces: the built-in stand-in for CelebA.

Every image here is SYNTHETIC: a cartoon face drawn with OpenCV from random
numbers. No photograph of a person is used or reproduced. The faces exist so
that the demo and the test suite can train and evaluate face recognition (FR)
and soft-biometric (SB) attribute prediction without downloading a dataset.

An identity is an integer `k`. Everything that makes a face recognisable
(outline, jaw, skin tone, hair colour and style, eye spacing, size, tilt and
iris colour, brow shape, nose, mouth, ears, moles, freckles, wrinkles, beard)
is drawn from `(seed, k)` only, so it is the same in every image of `k`. Five
CelebA attributes per identity, `ATTRIBUTE_NAMES`, are drawn independently and
change the drawing visibly (beard and short hair, bare scalp, large nose, round
cheeks and wide jaw, flat eye opening).

An image `(k, j)` adds nuisance drawn from `(seed, k, j)` only: roll, yaw,
scale and shift; expression (smile, open mouth, raised brows, eye openness,
gaze); lighting (directional gradient, brightness, contrast, colour
temperature, sensor noise); background and clothing. Faces are roughly aligned
like insightface 112x112 crops: eyes at about 44% of the height, the face
filling most of the frame.

Faces are drawn anti-aliased at twice the output size (at least 128 px) and
shrunk with `cv2.INTER_AREA`. Images are RGB `uint8`.

Example:

>>> train, test = synthetic_splits(100, 20, images_per_identity=8,
...                                image_size=64)
>>> train.images.shape, train.attributes.shape
((800, 64, 64, 3), (800, 5))
"""

import dataclasses
import math
from collections.abc import Mapping

import cv2
import numpy as np

from catface_keras.data.face_arrays import FaceArrays  # noqa: F401 (re-exported)
from catface_keras.soft_biometrics import PAPER_ATTRIBUTES

ATTRIBUTE_NAMES = PAPER_ATTRIBUTES

# Each attribute is on for this fraction of identities, independently, so a
# constant predictor scores at most 0.55 and attribute accuracy is meaningful.
ATTRIBUTE_PROBABILITY = 0.45

MIN_IMAGE_SIZE = 32

# SeedSequence pads short entropy lists with zeros, so [seed, k] and
# [seed, k, 0] would collide; a leading tag keeps the two streams apart.
_IDENTITY_STREAM = 1
_IMAGE_STREAM = 2

# Coordinates below are fractions of the image side; the head is centred on
# x = 0.5 and its widest row is at y = _HEAD_CENTRE_Y.
_HEAD_CENTRE_X = 0.5
_HEAD_CENTRE_Y = 0.47
_MIN_SUPERSAMPLED_SIZE = 128
# Fixed-point bits for sub-pixel polygon vertices (cv2 `shift`).
_SHIFT_BITS = 4

_HAIR_PALETTE = np.array(
    [
        (22, 18, 18),  # black
        (55, 36, 26),  # dark brown
        (100, 66, 42),  # brown
        (135, 58, 32),  # auburn
        (205, 168, 100),  # blonde
        (165, 163, 158),  # grey
        (185, 95, 45),  # ginger
    ],
    dtype=np.float64,
)
_HAIR_WEIGHTS = np.array([0.24, 0.2, 0.17, 0.1, 0.13, 0.08, 0.08])

_IRIS_PALETTE = np.array(
    [
        (70, 42, 22),  # brown
        (40, 25, 15),  # dark brown
        (60, 105, 165),  # blue
        (70, 120, 70),  # green
        (120, 95, 45),  # hazel
        (110, 120, 125),  # grey
    ],
    dtype=np.float64,
)

# Skin tones from deep to pale; a tone in [0, 1] interpolates between them.
_SKIN_RAMP = np.array(
    [
        (80, 52, 36),
        (130, 85, 58),
        (185, 130, 95),
        (225, 180, 145),
        (246, 218, 196),
    ],
    dtype=np.float64,
)


@dataclasses.dataclass(frozen=True)
class IdentityTraits:
    """Everything about one synthetic person that is constant across images.

    Lengths are fractions of the image side. Colours are RGB floats.
    """

    attributes: np.ndarray
    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    head_half_width: float
    cranium_height: float
    jaw_height: float
    jaw_squareness: float
    jaw_taper: float
    cheek_fullness: float
    hair_style: int
    hair_volume: float
    hairline_height: float
    hairline_side_height: float
    hair_part: float
    hair_length: float
    ear_size: float
    eye_height: float
    ear_height: float
    eye_half_spacing: float
    eye_half_width: float
    eye_openness: float
    eye_tilt_degrees: float
    iris_ratio: float
    eyeliner: float
    brow_gap: float
    brow_length: float
    brow_thickness: float
    brow_angle_degrees: float
    brow_arch: float
    nose_length: float
    nose_half_width: float
    nose_bridge_side: float
    mouth_height: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    beard_style: int
    stubble_strength: float
    blush_strength: float
    moles: np.ndarray
    freckles: np.ndarray
    forehead_lines: int
    smile_lines: bool


@dataclasses.dataclass(frozen=True)
class ImageNuisance:
    """What changes between images of one identity.

    Angles in degrees, lengths as fractions of the image side, colours RGB.
    """

    roll_degrees: float
    yaw: float
    scale: float
    shift: np.ndarray
    smile: float
    mouth_open: float
    brow_raise: float
    eye_open: float
    gaze: np.ndarray
    light_angle: float
    light_strength: float
    brightness: float
    contrast: float
    temperature: float
    noise_std: float
    background_style: int
    background_colours: np.ndarray
    background_angle: float
    background_frequency: float
    background_blobs: np.ndarray
    clothes: np.ndarray


def _check_non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"`{name}` must be a non-negative integer. Received: {name}={value!r}"
        )
    if value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative integer. Received: {name}={value}"
        )
    return int(value)


def _check_positive_int(value, name):
    value = _check_non_negative_int(value, name)
    if value < 1:
        raise ValueError(f"`{name}` must be at least 1. Received: {name}={value}")
    return value


def _check_image_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(
            f"`image_size` must be an integer >= {MIN_IMAGE_SIZE}. "
            f"Received: image_size={image_size!r}"
        )
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"`image_size` must be an integer >= {MIN_IMAGE_SIZE}. "
            f"Received: image_size={image_size}"
        )
    return int(image_size)


def _check_attributes_override(attributes_override):
    if attributes_override is None:
        return {}
    if not isinstance(attributes_override, Mapping):
        raise ValueError(
            "`attributes_override` must be a mapping from attribute name to 0 or 1. "
            f"Received: attributes_override={attributes_override!r}"
        )
    for name, value in attributes_override.items():
        if name not in ATTRIBUTE_NAMES:
            raise ValueError(
                f"`attributes_override` keys must be in {ATTRIBUTE_NAMES}. "
                f"Received: attributes_override={dict(attributes_override)!r}"
            )
        if value not in (0, 1):
            raise ValueError(
                "`attributes_override` values must be 0 or 1. "
                f"Received: attributes_override={dict(attributes_override)!r}"
            )
    return {name: int(value) for name, value in attributes_override.items()}


def _draw_attributes(rng):
    return (rng.random(len(ATTRIBUTE_NAMES)) < ATTRIBUTE_PROBABILITY).astype(np.int32)


def identity_attributes(identity, seed=0):
    """The five attribute labels of one identity.

    Args:
        identity: non-negative int, the identity number.
        seed: non-negative int, the dataset seed.

    Returns:
        `(5,)` int32 in {0, 1}, ordered as `ATTRIBUTE_NAMES`.
    """
    identity = _check_non_negative_int(identity, "identity")
    seed = _check_non_negative_int(seed, "seed")
    rng = np.random.default_rng([seed, _IDENTITY_STREAM, identity])
    return _draw_attributes(rng)


def _lerp(a, b, t):
    return a + (b - a) * t


def identity_traits(identity, seed=0, attributes_override=None):
    """Draw the stable appearance of one identity from `(seed, identity)`.

    Args:
        identity: non-negative int.
        seed: non-negative int.
        attributes_override: optional mapping such as `{"Bald": 1}` forcing
            attributes; the other traits are unchanged, so the same person is
            drawn with and without the attribute.

    Returns:
        An `IdentityTraits`.
    """
    identity = _check_non_negative_int(identity, "identity")
    seed = _check_non_negative_int(seed, "seed")
    override = _check_attributes_override(attributes_override)
    rng = np.random.default_rng([seed, _IDENTITY_STREAM, identity])
    attributes = _draw_attributes(rng)
    for name, value in override.items():
        attributes[ATTRIBUTE_NAMES.index(name)] = value
    male, bald, big_nose, chubby, narrow_eyes = (bool(a) for a in attributes)

    # Every raw draw happens whatever the attributes are, so forcing an
    # attribute changes only what that attribute controls.
    u = iter(rng.random(48))

    def draw(low, high):
        return _lerp(low, high, next(u))

    tone = draw(0.0, 1.0) * (len(_SKIN_RAMP) - 1)
    lower = min(int(tone), len(_SKIN_RAMP) - 2)
    skin = _lerp(_SKIN_RAMP[lower], _SKIN_RAMP[lower + 1], tone - lower)
    skin = np.clip(skin + rng.uniform(-10, 10, 3), 0, 255)
    hair = _HAIR_PALETTE[rng.choice(len(_HAIR_PALETTE), p=_HAIR_WEIGHTS)]
    hair = np.clip(hair + rng.uniform(-12, 12, 3), 0, 255)
    for _ in range(3):
        # Hair close to the skin colour would hide Bald; darken it.
        if np.linalg.norm(hair - skin) < 90:
            hair = hair * 0.5
    iris = _IRIS_PALETTE[rng.integers(len(_IRIS_PALETTE))]
    iris = np.clip(iris + rng.uniform(-12, 12, 3), 0, 255)
    lipstick = draw(0.0, 1.0)
    lips = _lerp(
        skin * np.array([0.85, 0.6, 0.6]),
        np.array([175.0, 55.0, 70.0]),
        0.25 + (0.0 if male else 0.45 * lipstick),
    )

    head_half_width = draw(0.31, 0.35)
    jaw_squareness = draw(2.0, 2.5)
    jaw_taper = draw(0.15, 0.35)
    jaw_height = draw(0.44, 0.49)
    cheek_fullness = draw(0.24, 0.3)
    if male:
        jaw_squareness += 0.9
        jaw_taper -= 0.1
    if chubby:
        head_half_width *= 1.06
        jaw_taper *= 0.3
        jaw_height += 0.01
    else:
        cheek_fullness = 0.0

    hair_volume = draw(0.012, 0.05)
    hairline_side_height = draw(0.38, 0.46)
    if male:
        hair_volume *= 0.55
        hairline_side_height -= 0.14

    eye_openness = draw(0.52, 0.7)
    if narrow_eyes:
        eye_openness *= 0.33
    brow_thickness = draw(0.009, 0.016)
    brow_gap = draw(0.055, 0.08)
    brow_arch = draw(0.0, 0.02)
    if male:
        brow_thickness *= 1.7
        brow_gap *= 0.8
        brow_arch *= 0.4
    eye_height = draw(0.43, 0.46)
    nose_length = draw(0.15, 0.19)
    # The mouth and ears stay put when Big_Nose lengthens the nose.
    mouth_height = eye_height + nose_length + draw(0.07, 0.095)
    ear_height = eye_height + nose_length * 0.45
    nose_half_width = draw(0.04, 0.054)
    if big_nose:
        nose_length *= 1.25
        nose_half_width *= 2.0

    stubble_strength = draw(0.45, 0.65) * (1.0 if male else 0.0)
    blush_strength = draw(0.0, 0.12)
    if chubby:
        blush_strength = 0.35
    eyeliner = draw(0.0, 1.0) * (0.0 if male else 1.0)
    mole_count = int(rng.integers(0, 4))
    moles = np.stack(
        [rng.uniform(-0.7, 0.7, 3), rng.uniform(0.0, 1.0, 3), rng.uniform(0.005, 0.009, 3)],
        axis=1,
    )[:mole_count]
    freckles = np.stack([rng.uniform(-1, 1, 24), rng.uniform(-1, 1, 24)], axis=1)
    if draw(0.0, 1.0) > 0.25:
        freckles = freckles[:0]
    forehead_lines = int(rng.integers(1, 4)) if draw(0.0, 1.0) < 0.3 else 0

    return IdentityTraits(
        attributes=attributes,
        skin=skin,
        hair=hair,
        iris=iris,
        lips=lips,
        head_half_width=head_half_width,
        cranium_height=draw(0.4, 0.44),
        jaw_height=jaw_height,
        jaw_squareness=jaw_squareness,
        jaw_taper=jaw_taper,
        cheek_fullness=cheek_fullness,
        hair_style=int(rng.integers(4)),
        hair_volume=hair_volume,
        hairline_height=draw(0.13, 0.22),
        hairline_side_height=hairline_side_height,
        hair_part=draw(-1.0, 1.0),
        hair_length=draw(0.78, 1.05),
        ear_size=draw(0.06, 0.09),
        eye_height=eye_height,
        ear_height=ear_height,
        eye_half_spacing=draw(0.15, 0.185),
        eye_half_width=draw(0.056, 0.072),
        eye_openness=eye_openness,
        eye_tilt_degrees=draw(-9.0, 9.0),
        iris_ratio=draw(0.42, 0.56),
        eyeliner=eyeliner,
        brow_gap=brow_gap,
        brow_length=draw(1.1, 1.5),
        brow_thickness=brow_thickness,
        brow_angle_degrees=draw(-10.0, 12.0),
        brow_arch=brow_arch,
        nose_length=nose_length,
        nose_half_width=nose_half_width,
        nose_bridge_side=1.0 if draw(0.0, 1.0) > 0.5 else -1.0,
        mouth_height=mouth_height,
        mouth_half_width=draw(0.075, 0.11),
        upper_lip=draw(0.009, 0.018),
        lower_lip=draw(0.013, 0.024),
        beard_style=int(rng.integers(4)),
        stubble_strength=stubble_strength,
        blush_strength=blush_strength,
        moles=moles,
        freckles=freckles,
        forehead_lines=forehead_lines,
        smile_lines=draw(0.0, 1.0) < 0.35,
    )


def image_nuisance(identity, index, seed=0):
    """Draw the per-image nuisance of image `index` of `identity`.

    Returns:
        An `ImageNuisance`, a function of `(seed, identity, index)` only.
    """
    identity = _check_non_negative_int(identity, "identity")
    index = _check_non_negative_int(index, "index")
    seed = _check_non_negative_int(seed, "seed")
    rng = np.random.default_rng([seed, _IMAGE_STREAM, identity, index])
    u = rng.random(20)
    background = rng.uniform(20, 235, (2, 3))
    return ImageNuisance(
        roll_degrees=_lerp(-10.0, 10.0, u[0]),
        yaw=_lerp(-1.0, 1.0, u[1]),
        scale=_lerp(0.9, 1.1, u[2]),
        shift=rng.uniform(-0.035, 0.035, 2),
        smile=_lerp(-0.4, 1.0, u[3]),
        mouth_open=max(0.0, _lerp(-0.6, 1.0, u[4])),
        brow_raise=_lerp(-0.006, 0.014, u[5]),
        eye_open=_lerp(0.85, 1.1, u[6]),
        gaze=rng.uniform(-1, 1, 2),
        light_angle=_lerp(0.0, 2 * math.pi, u[7]),
        light_strength=_lerp(0.0, 0.35, u[8]),
        brightness=_lerp(-22.0, 22.0, u[9]),
        contrast=_lerp(0.8, 1.15, u[10]),
        temperature=_lerp(-0.08, 0.08, u[11]),
        noise_std=_lerp(1.0, 5.0, u[12]),
        background_style=int(rng.integers(4)),
        background_colours=background,
        background_angle=_lerp(0.0, 2 * math.pi, u[13]),
        background_frequency=_lerp(3.0, 9.0, u[14]),
        background_blobs=rng.random((4, 4)).astype(np.float32),
        clothes=rng.uniform(20, 230, 3),
    )


_UNIT_CIRCLE_POINTS = 24
_UNIT_CIRCLE = np.stack(
    [
        np.cos(np.linspace(0, 2 * math.pi, _UNIT_CIRCLE_POINTS, endpoint=False)),
        np.sin(np.linspace(0, 2 * math.pi, _UNIT_CIRCLE_POINTS, endpoint=False)),
    ],
    axis=1,
)


def _ellipse(cx, cy, ax, ay, start=None, end=None, n=16):
    """Points on an axis-aligned ellipse (angles in radians, y down).

    The full ellipse is `(24, 2)`; an arc from `start` to `end` is `(n, 2)`.
    """
    if start is None:
        return _UNIT_CIRCLE * (ax, ay) + (cx, cy)
    t = np.linspace(start, end, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


class _Painter:
    """Draws shapes given in face coordinates onto a supersampled canvas.

    A face point `(x, y)` (fractions of the image side) goes through yaw (a
    horizontal squeeze plus a shift that grows with the point's `depth`, so
    the nose moves more than the outline), then roll, scale and shift. All of
    it is one affine map per depth, in cv2 fixed-point pixels.
    """

    def __init__(self, canvas, nuisance):
        self.canvas = canvas
        self.size = canvas.shape[0]
        squeeze = 1.0 - 0.1 * abs(nuisance.yaw)
        r = math.radians(nuisance.roll_degrees)
        c, s = math.cos(r), math.sin(r)
        units = self.size * (1 << _SHIFT_BITS)
        linear = units * nuisance.scale * np.array([[c, -s], [s, c]])
        self._matrix_t = (linear @ np.diag([squeeze, 1.0])).T
        centre_x = _HEAD_CENTRE_X * (1 - squeeze) - 0.5
        self._origin = linear @ (centre_x, -0.5) + units * (0.5 + nuisance.shift)
        self._per_depth = linear @ (0.04 * nuisance.yaw, 0.0)

    def to_pixels(self, points, depths):
        """`(n, 2)` face points with `(n,)` depths -> `(n, 2)` int32 pixels."""
        pixels = points @ self._matrix_t + self._origin + depths[:, None] * self._per_depth
        return np.rint(pixels).astype(np.int32)

    def draw(self, strokes):
        # One transform for every point of every stroke, then split back.
        polygons = [p for stroke in strokes for p in stroke[1]]
        sizes = [len(p) for p in polygons]
        depths = np.repeat([stroke[3] for stroke in strokes for _ in stroke[1]], sizes)
        pixels = self.to_pixels(np.concatenate(polygons), depths)
        ends = np.cumsum(sizes).tolist()
        starts = [0] + ends[:-1]
        pieces = [pixels[a:b] for a, b in zip(starts, ends)]
        first = 0
        for kind, stroke_polygons, colour, _, parameter in strokes:
            own = pieces[first : first + len(stroke_polygons)]
            first += len(stroke_polygons)
            if kind == "fill":
                cv2.fillPoly(self.canvas, own, colour, cv2.LINE_AA, _SHIFT_BITS)
            elif kind == "line":
                width = max(1, int(round(parameter * self.size)))
                cv2.polylines(self.canvas, own, False, colour, width, cv2.LINE_AA, _SHIFT_BITS)
            else:
                self._blend(own, colour, parameter)

    def _blend(self, pixels, colour, alpha):
        corners = np.concatenate(pixels) >> _SHIFT_BITS
        low = np.maximum(corners.min(axis=0) - 1, 0)
        high = np.minimum(corners.max(axis=0) + 2, self.size)
        if np.any(high <= low):
            return
        region = self.canvas[low[1] : high[1], low[0] : high[0]]
        painted = region.copy()
        offset = low << _SHIFT_BITS
        cv2.fillPoly(painted, [p - offset for p in pixels], colour, cv2.LINE_AA, _SHIFT_BITS)
        region[...] = cv2.addWeighted(painted, alpha, region, 1.0 - alpha, 0.0)


def _colour(colour):
    return tuple(min(max(float(c), 0.0), 255.0) for c in colour)


# Backgrounds are smooth, so they are drawn small and enlarged.
_BACKGROUND_DRAW_SIZE = 32


def _background(nuisance, size):
    """`(size, size, 3)` uint8 background: flat, gradient, blobs or stripes."""
    first, second = nuisance.background_colours.astype(np.float32)
    style = nuisance.background_style
    if style == 0:
        return np.broadcast_to(first.astype(np.uint8), (size, size, 3)).copy()
    small = _BACKGROUND_DRAW_SIZE
    grid = np.linspace(-1.0, 1.0, small, dtype=np.float32)
    along = (
        math.cos(nuisance.background_angle) * grid[None, :]
        + math.sin(nuisance.background_angle) * grid[:, None]
    )
    if style == 1:
        mix = 0.5 + 0.5 * along
    elif style == 2:
        mix = cv2.resize(nuisance.background_blobs, (small, small), interpolation=cv2.INTER_CUBIC)
    else:
        mix = 0.5 + 0.5 * np.sin(along * nuisance.background_frequency)
    mix = np.clip(mix, 0.0, 1.0)[..., None]
    image = (first + (second - first) * mix).astype(np.uint8)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def _as_arrays(polygons):
    return [p if isinstance(p, np.ndarray) else np.asarray(p, np.float64) for p in polygons]


def _fill(polygons, colour, depth=0.0):
    """A fill stroke; the polygons must not overlap (cv2 fills a set of
    contours by the even-odd rule)."""
    return ("fill", _as_arrays(polygons), _colour(colour), depth, None)


def _line(polylines, colour, width, depth=0.0):
    return ("line", _as_arrays(polylines), _colour(colour), depth, width)


def _blend(polygons, colour, alpha, depth=0.0):
    """A see-through fill at opacity `alpha` (stubble, blush, shading)."""
    return ("blend", _as_arrays(polygons), _colour(colour), depth, alpha)


def _mirror(points, axis_x):
    points = np.array(points, np.float64)
    points[:, 0] = 2 * axis_x - points[:, 0]
    return points


def _face_outline(traits, n=40):
    """`(2n, 2)` closed head outline: cranium arc right to left, then jaw."""
    cx, cy = _HEAD_CENTRE_X, _HEAD_CENTRE_Y
    w = traits.head_half_width
    top = np.linspace(0.0, math.pi, n)
    cranium = np.stack([cx + w * np.cos(top), cy - traits.cranium_height * np.sin(top)], 1)
    t = np.linspace(math.pi, 2 * math.pi, n)
    exponent = 2.0 / traits.jaw_squareness
    depth = np.abs(np.sin(t)) ** exponent
    across = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** exponent
    # Taper narrows the chin; fullness bulges the cheeks (Chubby).
    width = w * (1 - traits.jaw_taper * depth**2) * (
        1 + traits.cheek_fullness * np.sin(math.pi * depth**0.8)
    )
    jaw = np.stack([cx + width * across, cy + traits.jaw_height * depth], 1)
    return np.concatenate([cranium, jaw])


def _outline_half_width(outline, y):
    """Half width of the jaw part of `outline` at height `y`."""
    jaw = outline[len(outline) // 2 :]
    right = jaw[len(jaw) // 2 :][::-1]  # rows going down, as np.interp needs
    return float(np.interp(y, right[:, 1], right[:, 0]) - _HEAD_CENTRE_X)


def _back_hair(traits):
    """Hair behind the head: a rim round the cranium, long hair for women."""
    male, bald = traits.attributes[0], traits.attributes[1]
    cx, cy = _HEAD_CENTRE_X, _HEAD_CENTRE_Y
    w = traits.head_half_width + traits.hair_volume
    h = traits.cranium_height + traits.hair_volume
    if bald and male:
        # Horseshoe: short hair above the ears only; the top stays bare.
        x = cx - traits.head_half_width
        y = traits.eye_height
        patch = [
            (x + 0.02, y - 0.12),
            (x - 0.018, y - 0.1),
            (x - 0.018, y + 0.03),
            (x + 0.025, y + 0.03),
        ]
        return [_fill([patch, _mirror(patch, cx)], traits.hair)]
    if bald:
        return []
    if male:
        return [_fill([_ellipse(cx, cy - 0.01, w, h, math.pi, 2 * math.pi, 24)], traits.hair)]
    spread = w + 0.06
    body = np.concatenate(
        [
            [(cx - spread, traits.hair_length), (cx - w - 0.03, cy + 0.1)],
            _ellipse(cx, cy, w + 0.015, h, math.pi, 2 * math.pi, 24),
            [(cx + w + 0.03, cy + 0.1), (cx + spread, traits.hair_length)],
        ]
    )
    return [_fill([body], traits.hair)]


def _neck(traits):
    cx = _HEAD_CENTRE_X
    chin = _HEAD_CENTRE_Y + traits.jaw_height
    half = 0.11 + 0.1 * traits.cheek_fullness
    neck = [(cx - half, chin - 0.15), (cx + half, chin - 0.15), (cx + half, 1.2), (cx - half, 1.2)]
    return [_fill([neck], traits.skin * 0.8)]


def _clothes(traits, nuisance):
    cx = _HEAD_CENTRE_X
    chin = _HEAD_CENTRE_Y + traits.jaw_height
    half = 0.12 + 0.1 * traits.cheek_fullness
    shoulders = np.concatenate(
        [
            [(cx - 0.7, 1.3), (cx - 0.6, chin + 0.08)],
            _ellipse(cx, chin + 0.07, half, 0.05, math.pi, 0.0, 12),
            [(cx + 0.6, chin + 0.08), (cx + 0.7, 1.3)],
        ]
    )
    return [_fill([shoulders], nuisance.clothes)]


def _ears(traits):
    cx = _HEAD_CENTRE_X
    x = cx + traits.head_half_width + 0.004
    y = traits.ear_height
    size = traits.ear_size
    ear = _ellipse(x, y, size * 0.5, size)
    inner = _ellipse(x + 0.004, y, size * 0.25, size * 0.6, -1.6, 1.6, 10)
    return [
        _fill([ear, _mirror(ear, cx)], traits.skin * 0.93, depth=-0.4),
        _line([inner, _mirror(inner, cx)], traits.skin * 0.7, 0.006, depth=-0.4),
    ]


def _skin_marks(traits, outline):
    """Forehead lines, double chin, blush, freckles and moles."""
    cx = _HEAD_CENTRE_X
    skin = traits.skin
    chin = _HEAD_CENTRE_Y + traits.jaw_height
    strokes = []
    creases = [
        _ellipse(cx, traits.hairline_height + 0.085 + 0.022 * i, 0.11, 0.05, -2.4, -0.74, 12)
        for i in range(traits.forehead_lines)
    ]
    if traits.cheek_fullness > 0:
        creases.append(_ellipse(cx, chin - 0.045, 0.085, 0.035, 0.3, math.pi - 0.3, 14))
    if creases:
        strokes.append(_line(creases, skin * 0.8, 0.006))
    if traits.blush_strength > 0.01:
        cheek = _ellipse(cx + traits.head_half_width * 0.58, traits.eye_height + 0.13, 0.065, 0.05)
        cheeks = [cheek, _mirror(cheek, cx)]
        strokes.append(_blend(cheeks, (225, 95, 100), traits.blush_strength, depth=0.3))
    if len(traits.freckles):
        centres = traits.freckles * (0.17, 0.035) + (cx, traits.eye_height + 0.085)
        dots = [_ellipse(x, y, 0.0045, 0.0045) for x, y in centres]
        strokes.append(_fill(dots, skin * 0.7, depth=0.5))
    moles = []
    for across, down, radius in traits.moles:
        y = _lerp(traits.eye_height + 0.08, chin - 0.06, down)
        moles.append(_ellipse(cx + across * _outline_half_width(outline, y), y, radius, radius))
    if moles:
        strokes.append(_fill(moles, (70, 45, 35), 0.4))
    return strokes


def _beard(traits, outline):
    """Male facial hair: stubble shading always, plus the identity's style."""
    if not traits.attributes[0]:
        return []
    cx = _HEAD_CENTRE_X
    # Darker than dark skin too, so stubble shows on every skin tone.
    colour = np.minimum(traits.hair * 0.45 + 10, traits.skin * 0.5)
    mouth_y = traits.mouth_height
    chin = _HEAD_CENTRE_Y + traits.jaw_height
    # Placed from the mouth, not the nose tip, so Big_Nose (drawn later, on
    # top) changes nothing here.
    under_nose = mouth_y - 0.062
    top = under_nose - 0.02
    side = _outline_half_width(outline, top)
    jaw = outline[len(outline) // 2 :]
    # Sideburn, down the jaw line to the chin and up, then back under the nose.
    region = np.concatenate(
        [
            [(cx - side, top - 0.06)],
            jaw[jaw[:, 1] >= top],
            [
                (cx + side, top - 0.06),
                (cx + side * 0.55, top + 0.015),
                (cx + 0.04, under_nose),
                (cx - 0.04, under_nose),
                (cx - side * 0.55, top + 0.015),
            ],
        ]
    )
    strokes = [_blend([region], colour, traits.stubble_strength)]
    mouth_half_width = traits.mouth_half_width
    if traits.beard_style == 1:
        full = region * (1.02, 1.0) + (-0.02 * cx, 0.0)
        full[:, 1] += np.where(full[:, 1] > mouth_y + 0.04, 0.015, 0.0)
        strokes.append(_fill([full], colour))
    if traits.beard_style in (1, 2, 3):
        y = mouth_y - 0.005
        moustache = np.concatenate(
            [
                _ellipse(cx, y, mouth_half_width * 1.1, 0.03, math.pi, 2 * math.pi, 14),
                _ellipse(cx, y, mouth_half_width * 1.05, 0.012, 2 * math.pi, math.pi, 14),
            ]
        )
        strokes.append(_fill([moustache], colour * 0.9, depth=0.6))
    if traits.beard_style == 3:
        goatee = _ellipse(cx, chin - 0.05, mouth_half_width * 0.5, 0.05)
        strokes.append(_fill([goatee], colour * 0.9, depth=0.5))
    return strokes


_EYE_SAMPLES = np.linspace(-1.0, 1.0, 15)
_EYE_PARTS = (
    "sclera", "iris", "pupil", "glint", "cover_up", "cover_down", "upper_lid", "lower_lid", "crease"
)


def _eyes(traits, nuisance):
    """Both eyes: sclera, iris, pupil, glint, lids that clip the iris, lines."""
    cx, ey = _HEAD_CENTRE_X, traits.eye_height
    a = traits.eye_half_width
    upper_height = a * traits.eye_openness * nuisance.eye_open
    lower_height = upper_height * 0.55
    radius = a * traits.iris_ratio
    u = _EYE_SAMPLES
    upper_lid = np.stack([a * u, -upper_height * (1 - u**2) ** 0.8], 1)
    lower_lid = np.stack([a * u, lower_height * (1 - u**2) ** 1.1], 1)
    # Skin drawn above the upper lid and below the lower one clips the iris
    # to the eye opening; it must reach past both the lid and the iris.
    reach_up = max(upper_height, radius + 0.3 * upper_height) + 0.01
    reach_down = max(lower_height, radius) + 0.01
    iris = nuisance.gaze * (a * 0.3, upper_height * 0.15)
    parts = [
        np.concatenate([upper_lid, lower_lid[::-1]]),
        _ellipse(*iris, radius, radius),
        _ellipse(*iris, radius * 0.45, radius * 0.45),
        _ellipse(*(iris + radius * np.array([0.3, -0.3])), radius * 0.18, radius * 0.18),
        np.concatenate([upper_lid, [(1.1 * a, -reach_up), (-1.1 * a, -reach_up)]]),
        np.concatenate([lower_lid, [(1.1 * a, reach_down), (-1.1 * a, reach_down)]]),
        upper_lid,
        lower_lid,
        np.stack([0.85 * a * u, -upper_height - 0.012 - 0.006 * (1 - u**2)], 1),
    ]
    ends = np.cumsum([len(p) for p in parts])
    one_eye = np.concatenate(parts)
    placed = {name: [] for name in _EYE_PARTS}
    for side in (-1, 1):
        # Positive tilt raises the outer corners, mirrored between the eyes.
        r = math.radians(-side * traits.eye_tilt_degrees)
        c, s = math.cos(r), math.sin(r)
        eye = one_eye @ np.array([[c, s], [-s, c]]) + (cx + side * traits.eye_half_spacing, ey)
        for name, piece in zip(_EYE_PARTS, np.split(eye, ends[:-1])):
            placed[name].append(piece)
    skin = traits.skin
    return [
        _fill(placed["sclera"], (238, 234, 228), 0.5),
        _fill(placed["iris"], traits.iris, 0.5),
        _fill(placed["pupil"], (12, 10, 10), 0.5),
        _fill(placed["glint"], (250, 250, 250), 0.5),
        _fill(placed["cover_up"] + placed["cover_down"], skin, 0.5),
        _line(placed["upper_lid"], (35, 22, 20), 0.007 + 0.006 * traits.eyeliner, 0.5),
        _line(placed["lower_lid"], skin * 0.72, 0.004, 0.5),
        _line(placed["crease"], skin * 0.82, 0.004, 0.5),
    ]


_BROW_SAMPLES = np.linspace(0.0, 1.0, 10)


def _brows(traits, nuisance):
    cx = _HEAD_CENTRE_X
    a = traits.eye_half_width
    s = _BROW_SAMPLES
    inner = cx + traits.eye_half_spacing - a * 0.95
    x = inner + s * a * (0.95 + traits.brow_length)
    y = traits.eye_height - traits.brow_gap - nuisance.brow_raise
    y = y - traits.brow_arch * np.sin(math.pi * s**0.8)
    y = y - math.tan(math.radians(traits.brow_angle_degrees)) * s * a * 1.6
    half = traits.brow_thickness * (1.0 - 0.55 * s) / 2
    brow = np.concatenate([np.stack([x, y - half], 1), np.stack([x, y + half], 1)[::-1]])
    return [_fill([brow, _mirror(brow, cx)], traits.hair * 0.65, 0.5)]


def _nose(traits):
    cx = _HEAD_CENTRE_X
    skin = traits.skin
    w = traits.nose_half_width
    tip = traits.eye_height + traits.nose_length
    top = traits.eye_height + 0.02
    # The bridge stays narrow on a big nose: only the lower nose widens.
    bridge_half_width = min(w, 0.054) * 0.3
    body = [
        (cx - bridge_half_width, top),
        (cx + bridge_half_width, top),
        (cx + w * 1.05, tip),
        (cx, tip + 0.012),
        (cx - w * 1.05, tip),
    ]
    side = traits.nose_bridge_side
    bridge = [(cx + side * w * 0.35, top + 0.01), (cx + side * w * 0.75, tip - 0.025)]
    wing = _ellipse(cx + w * 0.8, tip - 0.004, w * 0.38, w * 0.45, -0.5 * math.pi, 0.6 * math.pi)
    nostril = _ellipse(cx + w * 0.42, tip + 0.008, w * 0.3, w * 0.16)
    return [
        _blend([body], skin * 0.6, 0.22, depth=0.8),
        _line([bridge], skin * 0.72, 0.006, depth=0.8),
        _fill([_ellipse(cx, tip - 0.008, w * 0.6, traits.nose_length * 0.16)], skin * 0.95, 1.0),
        _line([wing, _mirror(wing, cx)], skin * 0.62, 0.006, depth=0.9),
        _fill([nostril, _mirror(nostril, cx)], skin * 0.35, depth=0.9),
        _fill([_ellipse(cx - w * 0.15, tip - 0.016, w * 0.15, w * 0.15)], skin * 1.12 + 8, 1.0),
    ]


_MOUTH_SAMPLES = np.linspace(-1.0, 1.0, 19)


def _mouth(traits, nuisance):
    """Lips shaped by smile and opening; teeth and mouth interior when open."""
    cx = _HEAD_CENTRE_X
    y0 = traits.mouth_height
    w = traits.mouth_half_width * (1 + 0.12 * max(nuisance.smile, 0))
    u = _MOUTH_SAMPLES
    x = cx + w * u
    bend = 1 - u**2
    middle = y0 - 0.022 * nuisance.smile * u**2
    gap = 0.028 * nuisance.mouth_open * bend
    bow = 1 - 0.45 * np.exp(-((u / 0.2) ** 2))  # Cupid's bow dip

    def band(upper_edge, lower_edge):
        return np.concatenate([np.stack([x, upper_edge], 1), np.stack([x, lower_edge], 1)[::-1]])

    upper_bottom = middle - gap / 2
    upper_top = upper_bottom - traits.upper_lip * bend**0.5 * bow
    lower_top = middle + gap / 2
    lower_bottom = lower_top + traits.lower_lip * bend**0.6
    strokes = []
    if traits.smile_lines:
        fold = _ellipse(cx + w + 0.012, y0 - 0.02, 0.02, 0.045, -1.2, 1.0, 10)
        strokes.append(_line([fold, _mirror(fold, cx)], traits.skin * 0.8, 0.005, 0.5))
    if nuisance.mouth_open > 0.05:
        strokes.append(_fill([band(upper_bottom, lower_top)], (70, 22, 28), 0.6))
        teeth_bottom = np.minimum(upper_bottom + 0.35 * gap, lower_top)
        strokes.append(_fill([band(upper_bottom, teeth_bottom)], (240, 236, 225), 0.6))
    strokes += [
        _fill([band(upper_top, upper_bottom)], traits.lips, 0.6),
        _fill([band(lower_top, lower_bottom)], traits.lips * 1.08, 0.6),
        _line([np.stack([x, middle], 1)], traits.lips * 0.5, 0.005, 0.6),
    ]
    return strokes


def _hairline(traits, half_width, n=20):
    """`(n, 2)` hairline across the forehead, right to left, by hair style."""
    u = np.linspace(1.0, -1.0, n)
    side = traits.hairline_side_height
    drop = side - traits.hairline_height
    if traits.hair_style == 0:  # rounded
        y = side - drop * (1 - np.abs(u) ** 2.2)
    elif traits.hair_style == 1:  # straight fringe
        y = side - (drop - 0.04) * (1 - np.abs(u) ** 7)
    elif traits.hair_style == 2:  # side part, fringe sweeping down to one side
        y = side - drop * (1 - np.abs(u) ** 2.5) + 0.045 * traits.hair_part * u
    else:  # widow's peak with receding temples
        y = side - drop * (1 - u**2) - 0.035 * np.exp(-(((np.abs(u) - 0.55) / 0.18) ** 2))
        y = y + 0.03 * np.exp(-((u / 0.12) ** 2))
    return np.stack([_HEAD_CENTRE_X + half_width * u, np.minimum(y, side)], 1)


def _front_hair(traits, outline):
    """Hair over the forehead, sideburns for men, locks framing women's faces."""
    male, bald = traits.attributes[0], traits.attributes[1]
    cx, cy = _HEAD_CENTRE_X, _HEAD_CENTRE_Y
    if bald:
        shine = _ellipse(cx - 0.06, cy - traits.cranium_height + 0.07, 0.07, 0.03)
        return [_blend([shine], (255, 255, 255), 0.25)]
    w = traits.head_half_width + traits.hair_volume * 0.6
    h = traits.cranium_height + traits.hair_volume
    side = traits.hairline_side_height
    start = math.asin(min(1.0, (cy - side) / h))
    cap = _ellipse(cx, cy, w, h, math.pi + start, 2 * math.pi - start, 20)
    temple = w * math.cos(start)
    strand_x = cx + 0.03 * traits.hair_part
    strand = _ellipse(strand_x, cy, w * 0.5, h - 0.03, math.pi + 0.5, 1.5 * math.pi, 6)
    hairline = _hairline(traits, temple)
    sheen = _ellipse(cx - 0.04, cy - h + 0.05, w * 0.45, 0.025)
    strokes = [
        _fill([np.concatenate([cap, hairline])], traits.hair),
        _blend([sheen], (255, 255, 255), 0.18),
        _line([strand, _mirror(strand, cx)], traits.hair * 0.7, 0.006),
        _line([hairline], traits.hair * 0.6, 0.006),
    ]
    if male:
        x = cx + traits.head_half_width
        bottom = traits.eye_height + 0.05
        burn = [(x, side - 0.02), (x - 0.03, side - 0.02), (x - 0.022, bottom), (x + 0.002, bottom)]
        strokes.append(_fill([burn, _mirror(burn, cx)], traits.hair))
        return strokes
    jaw_y = traits.ear_height + 0.1
    edge = cx + _outline_half_width(outline, jaw_y)
    end = min(traits.hair_length, jaw_y + 0.2)
    lock = [
        (cx + temple + 0.01, side - 0.02),
        (cx + temple - 0.04, side + 0.02),
        (edge - 0.022, jaw_y),
        (edge + 0.01, end),
        (cx + traits.head_half_width + 0.06, end),
    ]
    strokes.append(_fill([lock, _mirror(lock, cx)], traits.hair))
    return strokes


class _FaceSketch:
    """The strokes of one identity; images add the per-image strokes.

    Identity-only strokes are built once so many images of one identity
    cost little more than drawing them.
    """

    def __init__(self, traits):
        self.traits = traits
        outline = _face_outline(traits)
        self.behind = _back_hair(traits) + _neck(traits)
        self.head = (
            _ears(traits)
            + [_fill([outline], traits.skin)]
            + _skin_marks(traits, outline)
            + _beard(traits, outline)
        )
        self.nose = _nose(traits)
        self.front = _front_hair(traits, outline)

    def strokes(self, nuisance):
        traits = self.traits
        return (
            self.behind
            + _clothes(traits, nuisance)
            + self.head
            + _eyes(traits, nuisance)
            + _brows(traits, nuisance)
            + self.nose
            + _mouth(traits, nuisance)
            + self.front
        )


def _apply_lighting(image, nuisance, rng):
    """Directional gain, contrast, brightness, colour temperature and noise."""
    size = image.shape[0]
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    angle = nuisance.light_angle
    along = math.cos(angle) * grid[None, :] + math.sin(angle) * grid[:, None]
    gain = (1.0 + nuisance.light_strength * along)[..., None]
    tint = np.array([1 + nuisance.temperature, 1.0, 1 - nuisance.temperature], np.float32)
    image = image.astype(np.float32) * (gain * (tint * nuisance.contrast))
    # Uniform noise with the requested standard deviation: cheaper than
    # Gaussian and just as good at hiding exact pixel values.
    noise_half_range = nuisance.noise_std * math.sqrt(3.0)
    image += rng.random(image.shape, dtype=np.float32) * np.float32(2 * noise_half_range)
    image += 128.0 * (1 - nuisance.contrast) + nuisance.brightness + 0.5 - noise_half_range
    return np.clip(image, 0, 255).astype(np.uint8)


def _render(sketch, nuisance, image_size, noise_rng):
    size = max(2 * image_size, _MIN_SUPERSAMPLED_SIZE)
    painter = _Painter(_background(nuisance, size), nuisance)
    painter.draw(sketch.strokes(nuisance))
    image = cv2.resize(painter.canvas, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return _apply_lighting(image, nuisance, noise_rng)


def _noise_rng(seed, identity, index):
    return np.random.default_rng([seed, _IMAGE_STREAM, identity, index, 1])


def render_face(identity, index, image_size=112, seed=0, attributes_override=None):
    """Draw image `index` of synthetic identity `identity`.

    Args:
        identity: non-negative int, which person.
        index: non-negative int, which image of that person.
        image_size: int >= 32, output height and width in pixels.
        seed: non-negative int, the dataset seed.
        attributes_override: optional mapping such as `{"Narrow_Eyes": 1}`
            forcing attributes while keeping every other trait (for tests
            and previews).

    Returns:
        `(image_size, image_size, 3)` uint8 RGB image, a function of
        `(seed, identity, index, image_size, attributes_override)` only.
    """
    image_size = _check_image_size(image_size)
    traits = identity_traits(identity, seed, attributes_override)
    nuisance = image_nuisance(identity, index, seed)
    return _render(_FaceSketch(traits), nuisance, image_size, _noise_rng(seed, identity, index))


def make_synthetic_faces(identity_ids, images_per_identity, image_size=112, seed=0, relabel=True):
    """Render `images_per_identity` images of each identity in `identity_ids`.

    Args:
        identity_ids: non-empty sequence of distinct non-negative ints.
        images_per_identity: int >= 1; image indices are `0 .. n - 1`.
        image_size: int >= 32.
        seed: non-negative int.
        relabel: if True, `identities[i]` is the position of the image's
            identity in `identity_ids` (class indices `0 .. len - 1`);
            otherwise the raw identity number.

    Returns:
        `FaceArrays` with `len(identity_ids) * images_per_identity` images,
        grouped by identity in the order given.
    """
    ids = np.asarray(identity_ids)
    integral = np.issubdtype(ids.dtype, np.integer) or ids.dtype == object
    if ids.ndim != 1 or ids.size == 0 or not integral:
        raise ValueError(
            "`identity_ids` must be a non-empty 1-D sequence of non-negative integers. "
            f"Received: identity_ids={identity_ids!r}"
        )
    ids = [_check_non_negative_int(i, "identity_ids") for i in ids.tolist()]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"`identity_ids` must be distinct. Received: identity_ids={identity_ids!r}"
        )
    images_per_identity = _check_positive_int(images_per_identity, "images_per_identity")
    image_size = _check_image_size(image_size)
    seed = _check_non_negative_int(seed, "seed")
    if not isinstance(relabel, bool):
        raise ValueError(f"`relabel` must be a bool. Received: relabel={relabel!r}")

    count = len(ids) * images_per_identity
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    identities = np.empty((count,), np.int32)
    attributes = np.empty((count, len(ATTRIBUTE_NAMES)), np.int32)
    row = 0
    for position, identity in enumerate(ids):
        traits = identity_traits(identity, seed)
        sketch = _FaceSketch(traits)
        for index in range(images_per_identity):
            nuisance = image_nuisance(identity, index, seed)
            images[row] = _render(sketch, nuisance, image_size, _noise_rng(seed, identity, index))
            identities[row] = position if relabel else identity
            attributes[row] = traits.attributes
            row += 1
    return FaceArrays(images, identities, attributes, ATTRIBUTE_NAMES)


def synthetic_splits(
    num_train_identities,
    num_test_identities,
    images_per_identity,
    image_size=112,
    seed=0,
    test_images_per_identity=None,
):
    """Identity-disjoint train and test sets for FR and SB experiments.

    Train uses identity numbers `[0, num_train_identities)`, test the next
    `num_test_identities`; both are relabelled from 0, so test identities are
    unseen in training (verification on held-out people).

    Args:
        num_train_identities: int >= 1.
        num_test_identities: int >= 1.
        images_per_identity: int >= 1, train images per identity.
        image_size: int >= 32.
        seed: non-negative int.
        test_images_per_identity: int >= 1 or None for `images_per_identity`.

    Returns:
        `(train, test)` `FaceArrays`.
    """
    num_train_identities = _check_positive_int(num_train_identities, "num_train_identities")
    num_test_identities = _check_positive_int(num_test_identities, "num_test_identities")
    if test_images_per_identity is None:
        test_images_per_identity = images_per_identity
    test_images_per_identity = _check_positive_int(
        test_images_per_identity, "test_images_per_identity"
    )
    train_ids = range(num_train_identities)
    train = make_synthetic_faces(train_ids, images_per_identity, image_size, seed)
    test_ids = range(num_train_identities, num_train_identities + num_test_identities)
    test = make_synthetic_faces(test_ids, test_images_per_identity, image_size, seed)
    return train, test


class SyntheticSource:
    """The built-in faces as a face source (`catface_keras.data.registry`): the
    `data.num_*` keys size them. `catface evaluate --data synthetic` draws its own
    (`catface_keras.evaluation.protocol_data.synthetic_evaluation_data`)."""

    def training_faces(self, data, attribute_names):
        train, test = synthetic_splits(
            data.num_train_identities,
            data.num_test_identities,
            data.images_per_identity,
            image_size=data.image_size,
            seed=data.seed,
            test_images_per_identity=data.test_images_per_identity,
        )
        # The drawn faces carry the paper's five attributes; the model may predict fewer.
        return train.select_attributes(attribute_names), test.select_attributes(attribute_names)


SOURCE = SyntheticSource()
