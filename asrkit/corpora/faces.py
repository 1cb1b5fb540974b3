"""Procedurally drawn faces: an identity data set made here (``asrkit corpus faces OUT``).

No face photograph can be downloaded, so the face recipe draws its own. Every
identity has fixed traits, drawn once from ``(seed, identity)``
(:class:`Traits`): head shape (width, height, squareness, jaw), skin tone,
ears, hair colour, style, volume and hairline, eye spacing, height, size,
shape and iris colour, eyebrow thickness, slope and gap, nose style, length
and width, mouth width, height, lips and their colour, a beard or moustache,
glasses, a mole or freckles. Every image draws the nuisances anew from
``(seed, identity, image)`` (:class:`Nuisance`): head pose (roll, yaw, scale,
shift), expression (smile, open mouth, eye openness, brow raise, gaze),
lighting (direction, strength, ambient, colour cast), clothes, a hat or
sunglasses, partial occlusion by a hand, a band or a block, background
clutter, blur, sensor noise and JPEG compression. The identity is in the
geometry and colours of the face, never in one pixel or in the background:
a verifier must learn it.

Layout (the course's)::

    OUT/train/<id>/<id>_NNNN.png    --identities ids x --per-identity images
    OUT/dev/<id>/<id>_NNNN.png      the same ids, --dev-per-identity other images
    OUT/verify/<id>/<id>_NNNN.png   --verify-identities ids never in train, --verify-per-identity images
    OUT/verify/pairs.txt            'img1 img2' (paths relative to verify/), half of them the same id
    OUT/verify/pairs_labels.txt     their labels, 1 (same) or 0, one per line
    OUT/faces.yaml                  the options and counts, written last

Ids are ``id00000`` ... (verify ids continue after the training ones).
Everything is a pure function of the options (the seed included): ``--jobs``
only changes how fast. Each image is written atomically; a rerun into the
folder redoes it whole.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asrkit.errors import UsageError

__all__ = ["FacesOptions", "FacesResult", "Nuisance", "Traits", "draw_nuisance", "draw_traits", "identity_name",
           "render_face", "write_faces"]

SPLITS = ("train", "dev", "verify")

# ------------------------------------------------------------------ palettes
SKIN = [(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 51, 23),
        (255, 205, 148), (234, 192, 134), (181, 120, 80), (120, 72, 44)]
HAIR = [(25, 20, 20), (60, 40, 30), (110, 75, 45), (150, 110, 70), (220, 190, 120), (140, 60, 30),
        (180, 80, 40), (150, 150, 150), (230, 228, 220), (80, 60, 50)]
IRIS = [(90, 60, 30), (40, 30, 20), (70, 120, 180), (80, 130, 80), (120, 130, 140), (130, 100, 50)]
LIPS = [(190, 90, 90), (160, 80, 70), (200, 110, 110), (130, 60, 60), (170, 100, 90)]
#: hair styles
BALD, CROP, LONG, BANGS, AFRO, PART, BUN = range(7)
#: beards
NO_BEARD, STUBBLE, FULL, GOATEE, MOUSTACHE = range(5)


def identity_name(k: int) -> str:
    """The folder name of identity ``k``: ``id00042``."""
    return f"id{k:05d}"


def _col(rng: np.random.Generator, palette: list, jitter: float) -> tuple[float, float, float]:
    base = np.asarray(palette[int(rng.integers(len(palette)))], dtype=float)
    return tuple(np.clip(base + rng.normal(0, jitter, 3), 0, 255))


# ------------------------------------------------------------------ identity traits
@dataclass
class Traits:
    """What stays the same in every image of an identity (lengths in a
    128-pixel frame, the head centred at (64, 66))."""

    head_w: float
    head_h: float
    square: float        # superellipse exponent: 2 round .. 3.4 square
    jaw: float           # narrowing of the lower face
    skin: tuple
    ear: float
    hair: tuple
    hair_style: int
    hair_volume: float
    hairline: float      # degrees of the head outline left bare above the ears
    part_side: int
    fringe: tuple        # the fringe's jagged edge, offsets in 0..1
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    eye_tilt: float
    iris: tuple
    brow_t: float
    brow_slope: float
    brow_gap: float
    brow_len: float
    nose_style: int
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    lips: tuple
    beard: int
    glasses: int         # 0 none, 1 round, 2 square
    glasses_col: tuple
    mole: tuple | None   # (x, y) offset from the head centre
    freckles: bool


def draw_traits(rng: np.random.Generator) -> Traits:
    """An identity's traits (:class:`Traits`) from ``rng``."""
    u = rng.uniform
    style = int(rng.choice(7, p=[0.08, 0.22, 0.2, 0.14, 0.1, 0.16, 0.1]))
    beard = int(rng.choice(5, p=[0.6, 0.1, 0.12, 0.09, 0.09]))
    hair = _col(rng, HAIR, 8)
    return Traits(
        head_w=u(24, 34), head_h=u(31, 40), square=u(2.0, 3.4), jaw=u(0.0, 0.38), skin=_col(rng, SKIN, 10),
        ear=u(0.7, 1.3), hair=hair, hair_style=style, hair_volume=u(0.04, 0.16), hairline=u(4, 30),
        part_side=int(rng.choice([-1, 1])), fringe=tuple(u(0, 1, 7)),
        eye_dx=u(10, 16), eye_y=u(-9, -1), eye_w=u(4.5, 7.5), eye_h=u(2.2, 4.2), eye_tilt=u(-0.15, 0.15),
        iris=_col(rng, IRIS, 10), brow_t=u(1.3, 3.8), brow_slope=u(-0.35, 0.35), brow_gap=u(4, 9),
        brow_len=u(5, 9), nose_style=int(rng.integers(3)), nose_len=u(8, 16), nose_w=u(3.5, 8),
        mouth_y=u(15, 24), mouth_w=u(8, 15), lip_up=u(1.2, 3.5), lip_lo=u(1.5, 4.5), lips=_col(rng, LIPS, 10),
        beard=beard, glasses=int(rng.choice(3, p=[0.72, 0.14, 0.14])),
        glasses_col=_col(rng, HAIR[:4] + [(150, 30, 30)], 10),
        mole=(u(-18, 18), u(-5, 25)) if rng.random() < 0.35 else None, freckles=bool(rng.random() < 0.15))


# ------------------------------------------------------------------ per-image nuisances
@dataclass
class Nuisance:
    """What changes from image to image."""

    roll: float           # degrees
    yaw: float            # -1 .. 1: features shift sideways, one ear shrinks
    scale: float
    shift: tuple          # (dx, dy) in a 128-pixel frame
    smile: float          # -1 frown .. 1 smile
    mouth_open: float
    eye_open: float
    brow_raise: float
    gaze: tuple
    light_dir: float      # radians
    light: float          # strength of the shading gradient
    ambient: float
    cast: tuple           # per-channel gains
    clothes: tuple
    background: int       # seed of the background
    hair_shade: float
    glasses_on: bool
    hat: tuple | None     # colour
    sunglasses: bool
    occluder: int         # 0 none, 1 hand, 2 band, 3 block
    occ: tuple            # where and how big (x, y, w, h, angle) in a 128 frame
    occ_col: tuple
    blur: float
    noise: float
    jpeg: int             # quality, 0 = none


def draw_nuisance(rng: np.random.Generator, t: Traits, strength: float = 1.0) -> Nuisance:
    """One image's nuisances (:class:`Nuisance`) for identity ``t`` from ``rng``.
    ``strength`` scales how far pose, lighting and image quality stray from a
    frontal, evenly lit, clean picture, and how often accessories and
    occluders come (0: none; 1: the default; expression is not scaled)."""
    u = rng.uniform

    def towards(neutral: float, value: float) -> float:
        return neutral + strength * (value - neutral)

    r_occ = rng.random()
    occ = 0 if r_occ >= 0.38 * strength else 1 + min(2, int(3 * r_occ / (0.38 * strength)))
    return Nuisance(
        roll=strength * rng.normal(0, 8), yaw=float(np.clip(strength * rng.normal(0, 0.4), -1, 1)),
        scale=towards(1.25, u(1.08, 1.42)), shift=(strength * u(-9, 9), strength * u(-8, 8)), smile=u(-0.6, 1.0),
        mouth_open=max(0.0, u(-0.6, 1.0)), eye_open=u(0.35, 1.15), brow_raise=u(-1.5, 3),
        gaze=(u(-1, 1), u(-0.6, 0.6)), light_dir=u(0, 2 * math.pi), light=strength * u(0.0, 0.55),
        ambient=towards(0.95, u(0.7, 1.2)), cast=tuple(towards(1.0, c) for c in u(0.85, 1.15, 3)),
        clothes=tuple(u(0, 255, 3)), background=int(rng.integers(2 ** 31)), hair_shade=u(0.8, 1.2),
        glasses_on=bool(t.glasses and rng.random() < 1 - 0.15 * strength),
        hat=tuple(u(0, 255, 3)) if rng.random() < 0.1 * strength else None,
        sunglasses=bool(rng.random() < 0.05 * strength), occluder=occ,
        occ=(u(-25, 25), u(-20, 30), u(14, 34), u(10, 30), u(-40, 40)), occ_col=tuple(u(0, 255, 3)),
        blur=u(0.3, 1.1) * min(1.0, strength) if rng.random() < 0.35 * strength else 0.0,
        noise=strength * u(0, 7), jpeg=int(rng.integers(25, 90)) if rng.random() < 0.5 * strength else 0)


# ------------------------------------------------------------------ drawing
def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, v * f))) for v in c)


def _mix(a, b, w: float) -> tuple[int, int, int]:
    return tuple(int(round(x * (1 - w) + y * w)) for x, y in zip(a, b))


def _outline(t: Traits, cx: float, cy: float, k: float, grow: float = 0.0, n: int = 48) -> np.ndarray:
    """The head outline ``(n, 2)``: a superellipse narrowed towards the chin,
    angles from 0 (right) clockwise (y grows downwards), grown by ``grow``."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(a), np.sin(a)
    e = 2.0 / t.square
    x = np.sign(c) * np.abs(c) ** e * t.head_w * (1 + grow)
    y = np.sign(s) * np.abs(s) ** e * t.head_h * (1 + grow)
    x = x * (1 - t.jaw * np.clip(s, 0, 1) ** 2)
    return np.stack([(cx + x) * k, (cy + y) * k], axis=1)


def _poly(points: np.ndarray) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points]


def _face_layer(t: Traits, n: Nuisance, S: int):
    """The face, hair and shoulders on a transparent ``S x S`` RGBA layer, frontal and centred."""
    from PIL import Image, ImageDraw

    k = S / 128.0
    img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)

    def box(x0, y0, x1, y1):
        return [min(x0, x1) * k, min(y0, y1) * k, max(x0, x1) * k, max(y0, y1) * k]

    cx, cy = 64.0, 66.0
    hw, hh = t.head_w, t.head_h
    fx = cx + n.yaw * hw * 0.32                      # the features' centre line turns with the head
    hair = _shade(t.hair, n.hair_shade)
    skin = _shade(t.skin, 1.0)
    dark_skin = _shade(t.skin, 0.78)

    # shoulders and neck
    d.ellipse(box(cx - 58, cy + hh + 8, cx + 58, cy + hh + 80), fill=tuple(int(v) for v in n.clothes))
    d.rectangle(box(cx - hw * 0.42, cy + hh * 0.5, cx + hw * 0.42, cy + hh + 16), fill=dark_skin)
    # hair behind the head
    if t.hair_style == LONG:
        top = cy - hh * (1 + t.hair_volume)
        d.rounded_rectangle(box(cx - hw * 1.28, top, cx + hw * 1.28, cy + hh * 1.05), radius=hw * 0.9 * k, fill=hair)
    elif t.hair_style == AFRO:
        r = 1.25 + t.hair_volume
        d.ellipse(box(cx - hw * r, cy - hh * (r + 0.15), cx + hw * r, cy + hh * 0.35), fill=hair)
    elif t.hair_style == BUN:
        d.ellipse(box(cx - 11, cy - hh - 20, cx + 11, cy - hh + 2), fill=hair)
    # ears (the one the head turns away from shows less)
    for s in (-1, 1):
        es = t.ear * float(np.clip(1 - s * n.yaw * 0.9, 0.15, 1.6))
        ex = cx + s * (hw * (1 - 0.02) + 2.5 * es) - n.yaw * 3
        d.ellipse(box(ex - 3.2 * es, cy + t.eye_y - 2, ex + 3.2 * es, cy + t.eye_y + 13 * t.ear), fill=dark_skin)
    # head
    outline = _outline(t, cx, cy, k)
    d.polygon(_poly(outline), fill=skin)
    # beard (below the mouth line, following the jaw)
    if t.beard in (STUBBLE, FULL):
        lower = outline[(outline[:, 1] / k) > cy + t.mouth_y - 9]
        col = hair if t.beard == FULL else _mix(skin, hair, 0.35)
        d.polygon(_poly(lower), fill=col)
        mouth_skin = box(fx - t.mouth_w - 3, cy + t.mouth_y - 7, fx + t.mouth_w + 3, cy + t.mouth_y + 5)
        if t.beard == FULL:
            d.ellipse(mouth_skin, fill=_mix(skin, hair, 0.15))
    elif t.beard == GOATEE:
        d.ellipse(box(fx - 7, cy + t.mouth_y + 2, fx + 7, cy + hh * 0.97), fill=hair)
    # hair on top
    if t.hair_style not in (BALD,):
        grow = t.hair_volume * (1.6 if t.hair_style == AFRO else 1.0)
        cap = _outline(t, cx, cy, k, grow)
        start = t.hairline * math.pi / 180
        ang = np.linspace(0, 2 * np.pi, len(cap), endpoint=False)
        upper = cap[(ang >= math.pi + start) & (ang <= 2 * math.pi - start)]
        if t.hair_style == PART:  # swept: one side lower
            upper = upper.copy()
            side = np.sign(upper[:, 0] / k - cx) == t.part_side
            upper[side, 1] += 3 * k
        d.polygon(_poly(upper), fill=hair)
        if t.hair_style in (BANGS, PART, LONG):
            # a fringe over the forehead with a jagged lower edge
            y0 = cy - hh * 0.98
            low = cy + t.eye_y - t.brow_gap - (2 if t.hair_style == BANGS else 8)
            xs = np.linspace(cx - hw * 0.95, cx + hw * 0.95, len(t.fringe))
            edge = [(x * k, (low - 4 * f - (6 * t.part_side * (x - cx) / hw if t.hair_style == PART else 0)) * k)
                    for x, f in zip(xs, t.fringe)]
            d.polygon([(float((cx - hw * 0.98) * k), float(y0 * k)), *edge,
                       (float((cx + hw * 0.98) * k), float(y0 * k))], fill=hair)
    elif t.hair_volume > 0.1:  # bald on top, hair at the sides
        for s in (-1, 1):
            d.ellipse(box(cx + s * hw * 0.98 - 4, cy - 10, cx + s * hw * 0.98 + 4, cy + 6), fill=hair)
    if n.hat is not None:
        col = tuple(int(v) for v in n.hat)
        d.chord(box(cx - hw * 1.12, cy - hh * 1.35, cx + hw * 1.12, cy - hh * 0.2), 180, 360, fill=col)
        d.rectangle(box(cx - hw * 1.3, cy - hh * 0.72, cx + hw * 1.3, cy - hh * 0.62), fill=_shade(col, 0.8))

    # eyes
    ey = cy + t.eye_y
    for s in (-1, 1):
        ex = fx + s * t.eye_dx * (1 - s * n.yaw * 0.12)
        w = t.eye_w * float(np.clip(1 - s * n.yaw * 0.35, 0.4, 1.4))
        h = max(0.5, t.eye_h * n.eye_open)
        tilt = s * t.eye_tilt * w
        d.polygon([(float((ex - w) * k), float((ey + tilt) * k)), (float(ex * k), float((ey - h) * k)),
                   (float((ex + w) * k), float((ey - tilt) * k)), (float(ex * k), float((ey + h) * k))],
                  fill=(240, 238, 232))
        ir = min(t.eye_h * 0.95, w * 0.55)
        ix, iy = ex + n.gaze[0] * (w - ir) * 0.6, ey + n.gaze[1] * 0.6
        d.ellipse(box(ix - ir, iy - min(ir, h), ix + ir, iy + min(ir, h)), fill=tuple(int(v) for v in t.iris))
        pr = ir * 0.45
        d.ellipse(box(ix - pr, iy - min(pr, h), ix + pr, iy + min(pr, h)), fill=(15, 12, 12))
        d.line([(float((ex - w) * k), float((ey + tilt) * k)), (float(ex * k), float((ey - h) * k)),
                (float((ex + w) * k), float((ey - tilt) * k))], fill=_shade(t.skin, 0.55), width=max(1, int(k)))
        # eyebrow
        by = ey - t.eye_h - t.brow_gap - n.brow_raise
        bx0, bx1 = ex - s * t.brow_len * 0.35, ex + s * t.brow_len
        y0, y1 = by, by + t.brow_slope * t.brow_len
        th = t.brow_t
        d.polygon([(float(bx0 * k), float(y0 * k)), (float(bx1 * k), float(y1 * k)),
                   (float(bx1 * k), float((y1 + th * 0.6) * k)), (float(bx0 * k), float((y0 + th) * k))],
                  fill=_shade(hair, 0.75))
    # glasses / sunglasses
    if n.glasses_on or n.sunglasses:
        col = (20, 20, 20) if n.sunglasses else tuple(int(v) for v in t.glasses_col)
        wdt = max(1, int(round(1.4 * k)))
        shape = 1 if n.sunglasses else t.glasses
        for s in (-1, 1):
            ex = fx + s * t.eye_dx * (1 - s * n.yaw * 0.12)
            r = t.eye_w + 2.5
            b = box(ex - r, ey - r * 0.8, ex + r, ey + r * 0.8)
            if n.sunglasses:
                d.ellipse(b, fill=(25, 25, 30), outline=col, width=wdt)
            elif shape == 1:
                d.ellipse(b, outline=col, width=wdt)
            else:
                d.rectangle(b, outline=col, width=wdt)
        d.line([((fx - t.eye_dx + t.eye_w + 2.5) * k, ey * k), ((fx + t.eye_dx - t.eye_w - 2.5) * k, ey * k)],
               fill=col, width=wdt)
    # nose
    nx, ny0, ny1 = fx + n.yaw * 3, ey + 2, ey + 2 + t.nose_len
    nose_col = _shade(t.skin, 0.7)
    if t.nose_style == 0:
        d.polygon([(nx * k, ny0 * k), ((nx - t.nose_w * 0.6) * k, ny1 * k), ((nx + t.nose_w * 0.6) * k, ny1 * k)],
                  fill=_shade(t.skin, 0.88))
    elif t.nose_style == 1:
        d.line([(nx * k, ny0 * k), ((nx + n.yaw * 2 + 1.5) * k, ny1 * k)], fill=nose_col, width=max(1, int(k)))
    else:
        d.ellipse(box(nx - t.nose_w * 0.45, ny1 - 3, nx + t.nose_w * 0.45, ny1 + 1.5), fill=_shade(t.skin, 0.86))
    for s in (-1, 1):
        d.ellipse(box(nx + s * t.nose_w * 0.45 - 1.2, ny1 - 0.6, nx + s * t.nose_w * 0.45 + 1.2, ny1 + 1.2),
                  fill=_shade(t.skin, 0.5))
    # moustache
    my = cy + t.mouth_y
    if t.beard in (MOUSTACHE, FULL):
        d.polygon([((fx - t.mouth_w - 1) * k, (my - 1) * k), (fx * k, (my - 5.5) * k),
                   ((fx + t.mouth_w + 1) * k, (my - 1) * k), (fx * k, (my - 2.5) * k)], fill=hair)
    # mouth: upper and lower lip curves, corners lifted by the smile
    mw = t.mouth_w * (1 + 0.12 * n.smile) * float(np.clip(1 - abs(n.yaw) * 0.2, 0.6, 1))
    xs = np.linspace(-1, 1, 9)
    lift = n.smile * 3.5 * xs ** 2
    opn = n.mouth_open * 6
    top = my - t.lip_up * (1 - xs ** 2) - lift
    mid_hi = my - lift - opn * 0.3 * (1 - xs ** 2)
    mid_lo = my - lift + opn * (1 - xs ** 2)
    bot = mid_lo + t.lip_lo * (1 - xs ** 2)
    X = (fx + xs * mw) * k
    lips = tuple(int(v) for v in t.lips)
    if opn > 0.5:
        d.polygon(list(zip(X, mid_hi * k)) + list(zip(X[::-1], mid_lo[::-1] * k)), fill=(60, 20, 25))
        d.polygon(list(zip(X[2:-2], mid_hi[2:-2] * k)) + list(zip(X[2:-2][::-1], (mid_hi[2:-2][::-1] + 1.6) * k)),
                  fill=(235, 232, 225))
    d.polygon(list(zip(X, top * k)) + list(zip(X[::-1], mid_hi[::-1] * k)), fill=lips)
    d.polygon(list(zip(X, mid_lo * k)) + list(zip(X[::-1], bot[::-1] * k)), fill=_shade(lips, 1.08))
    # mole, freckles
    if t.mole is not None:
        mx, myy = t.mole
        d.ellipse(box(cx + mx + n.yaw * 8 - 1.3, cy + myy - 1.3, cx + mx + n.yaw * 8 + 1.3, cy + myy + 1.3),
                  fill=_shade(t.skin, 0.4))
    if t.freckles:
        for j in range(10):
            s = 1 if j % 2 else -1
            x = fx + s * (t.eye_dx + (j % 5) * 1.8 - 3)
            y = ey + 6 + (j // 2 % 3) * 2.2
            d.ellipse(box(x - 0.8, y - 0.8, x + 0.8, y + 0.8), fill=_shade(t.skin, 0.68))
    return img


def _affine(img, n: Nuisance, S: int):
    """The layer rolled, scaled and shifted about the head centre."""
    from PIL import Image

    k = S / 128.0
    cx, cy = 64.0 * k, 66.0 * k
    a = math.radians(n.roll)
    c, s = math.cos(a) / n.scale, math.sin(a) / n.scale
    tx, ty = cx + n.shift[0] * k, cy + n.shift[1] * k
    # output (x, y) -> input: R^-1 / scale applied to (x - t), plus the centre
    coeffs = (c, s, cx - c * tx - s * ty, -s, c, cy + s * tx - c * ty)
    return img.transform((S, S), Image.AFFINE, coeffs, resample=Image.BILINEAR)  # drawn at 2x: bilinear is enough


def _background(rng: np.random.Generator, size: int):
    """A cluttered background ``size x size`` RGB: a two-colour gradient and random shapes."""
    from PIL import Image, ImageDraw

    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    a = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    w = np.clip((xx - 0.5) * math.cos(a) + (yy - 0.5) * math.sin(a) + 0.5, 0, 1)[..., None]
    bg = Image.fromarray((c0 * (1 - w) + c1 * w).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(bg)
    for _ in range(int(rng.integers(2, 9))):
        col = tuple(int(v) for v in rng.uniform(0, 255, 3))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * size, y0 + rng.uniform(0.05, 0.5) * size
        kind = int(rng.integers(4))
        if kind == 0:
            d.rectangle([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], fill=col)
        elif kind == 2:
            d.line([x0, y0, x1, y1], fill=col, width=int(rng.integers(1, 4)))
        else:
            d.polygon([tuple(p) for p in rng.uniform(-0.1, 1.1, (3, 2)) * size], fill=col)
    return bg


def _occlude(img, n: Nuisance, size: int, rng: np.random.Generator) -> None:
    """Cover part of the face: a hand (a skin-coloured blob), a band or a block."""
    from PIL import ImageDraw

    if n.occluder == 0:
        return
    k = size / 128.0
    x, y, w, h, ang = n.occ
    cx, cy = (64 + x + n.shift[0]) * k, (66 + y + n.shift[1]) * k
    d = ImageDraw.Draw(img)
    if n.occluder == 1:  # a hand: a palm and fingers in a skin tone
        col = _col(rng, SKIN, 10)
        col = tuple(int(v) for v in col)
        d.ellipse([cx - w * 0.5 * k, cy - h * 0.45 * k, cx + w * 0.5 * k, cy + h * 0.45 * k], fill=col)
        for j in range(4):
            fx = cx + (j - 1.5) * w * 0.22 * k
            d.rounded_rectangle([fx - w * 0.09 * k, cy - h * 1.05 * k, fx + w * 0.09 * k, cy], radius=w * 0.08 * k,
                                fill=_shade(col, 0.95))
        return
    col = tuple(int(v) for v in n.occ_col)
    c, s = math.cos(math.radians(ang)), math.sin(math.radians(ang))
    hw, hh = (w * 1.6 * k, h * 0.25 * k) if n.occluder == 2 else (w * 0.5 * k, h * 0.5 * k)
    pts = [(cx + c * px - s * py, cy + s * px + c * py) for px, py in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))]
    d.polygon(pts, fill=col)


def render_face(t: Traits, n: Nuisance, size: int = 64) -> np.ndarray:
    """The image of identity ``t`` under nuisances ``n``: ``uint8 (size, size, 3)``."""
    from PIL import Image, ImageFilter

    S = 2 * size
    layer = _affine(_face_layer(t, n, S), n, S).resize((size, size), Image.BOX)   # drawn at 2x, then averaged
    rng = np.random.default_rng(n.background)
    face = np.asarray(layer, dtype=np.float32)                                     # (H, W, 4)
    alpha = face[..., 3:] / 255.0
    # lighting: a shading gradient in a random direction over the face, an ambient level, a colour cast
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1) - 0.5
    shade = 1 + n.light * 2 * (xx * math.cos(n.light_dir) + yy * math.sin(n.light_dir))
    rgb = face[..., :3] * np.clip(shade, 0.3, 1.7)[..., None] * n.ambient
    bg = np.asarray(_background(rng, size), dtype=np.float32)
    out = bg * (1 - alpha) + rgb * alpha
    out = out * np.asarray(n.cast, dtype=np.float32)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    _occlude(img, n, size, rng)
    if n.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(n.blur * size / 64))
    arr = np.asarray(img, dtype=np.float32)
    if n.noise > 0:
        arr = arr + rng.normal(0, n.noise, arr.shape).astype(np.float32)
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if n.jpeg:
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=n.jpeg)
        buf.seek(0)
        arr = np.asarray(Image.open(buf).convert("RGB"))
    return np.array(arr, dtype=np.uint8, order="C")  # writable, whatever the last step gave


# ------------------------------------------------------------------ the corpus
@dataclass
class FacesOptions:
    """The options of ``asrkit corpus faces`` (their names, with ``-`` for ``_``)."""

    identities: int = 500
    per_identity: int = 20
    dev_per_identity: int = 5
    verify_identities: int = 100
    verify_per_identity: int = 10
    pairs: int = 2000
    size: int = 64
    seed: int = 0
    #: scales the nuisances (:func:`draw_nuisance`): 0 clean frontal faces, 1 the default, up to 1.5
    nuisance: float = 1.0

    def check(self) -> None:
        """:class:`UsageError` naming the first bad option."""
        for name, low in (("identities", 1), ("per_identity", 1), ("dev_per_identity", 0), ("verify_identities", 0),
                          ("verify_per_identity", 0), ("pairs", 0), ("size", 16)):
            v = getattr(self, name)
            if v < low:
                raise UsageError(f"--{name.replace('_', '-')} must be >= {low} (got {v})")
        if self.size > 512:
            raise UsageError(f"--size must be <= 512 (got {self.size})")
        if not 0 <= self.nuisance <= 1.5:
            raise UsageError(f"--nuisance must be in [0, 1.5] (got {self.nuisance})")
        if self.pairs and self.verify_identities:
            if self.verify_identities < 2 or self.verify_per_identity < 2:
                raise UsageError("verification pairs need --verify-identities >= 2 and --verify-per-identity >= 2 "
                                 "(or --pairs 0)")


@dataclass
class FacesResult:
    """What :func:`write_faces` wrote: images and identities per split, pairs, wall seconds."""

    out: Path
    images: dict[str, int]
    identities: dict[str, int]
    pairs: int
    seconds: float


def _traits_of(seed: int, identity: int) -> Traits:
    return draw_traits(np.random.default_rng([seed, 1, identity]))


def _identity_job(args: tuple) -> int:
    """Draw and write the images of one identity: ``(out, seed, size, nuisance
    strength, identity, [(split, first image, count), ...])``; returns the images written."""
    from asrkit.data.images import write_image_file

    out, seed, size, strength, ident, parts = args
    t = _traits_of(seed, ident)
    name = identity_name(ident)
    done = 0
    for split, first, count in parts:
        if count == 0:
            continue
        folder = Path(out) / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(first, first + count):
            n = draw_nuisance(np.random.default_rng([seed, 2, ident, j]), t, strength)
            write_image_file(render_face(t, n, size), folder / f"{name}_{j:04d}.png")
            done += 1
    return done


def _noop() -> None:
    return None


def make_pairs(names: dict[str, list[str]], num: int, seed: int) -> list[tuple[str, str, int]]:
    """``num`` distinct pairs of verification images (``names``: identity ->
    its image paths), half of the same identity (label 1), half of two
    (label 0), in shuffled order; deterministic from ``seed``."""
    import random

    rng = random.Random(f"{seed}/pairs")
    ids = sorted(names)
    same_total = sum(len(v) * (len(v) - 1) // 2 for v in names.values())
    want_same = min(num // 2 + num % 2, same_total)
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str, int]] = []
    k = 0
    while len(out) < want_same:
        imgs = names[ids[k % len(ids)]]
        k += 1
        if len(imgs) < 2:
            continue
        a, b = rng.sample(imgs, 2)
        if (a, b) in seen or (b, a) in seen:
            continue
        seen.add((a, b))
        out.append((a, b, 1))
    while len(out) < num:
        i, j = rng.sample(ids, 2)
        a, b = rng.choice(names[i]), rng.choice(names[j])
        if (a, b) in seen or (b, a) in seen:
            continue
        seen.add((a, b))
        out.append((a, b, 0))
    rng.shuffle(out)
    return out


def write_faces(out: str | os.PathLike, options: FacesOptions, jobs: int = 1) -> FacesResult:
    """Draw the corpus of ``options`` into ``out`` (made ready by the caller,
    see :func:`asrkit.io.prepare_output_dir`) with ``jobs`` processes."""
    import yaml

    from asrkit import log
    from asrkit.io import atomic_write
    from asrkit.workers import check_jobs, worker_pool

    options.check()
    check_jobs(jobs)
    out = Path(out)
    t0 = time.monotonic()
    (out / "faces.yaml").unlink(missing_ok=True)
    for split in SPLITS:  # a rerun redoes the corpus whole (other options may leave other folders)
        shutil.rmtree(out / split, ignore_errors=True)
    o = options
    jobs_list = [(str(out), o.seed, o.size, o.nuisance, i,
                  [("train", 0, o.per_identity), ("dev", o.per_identity, o.dev_per_identity)])
                 for i in range(o.identities)]
    jobs_list += [(str(out), o.seed, o.size, o.nuisance, o.identities + v, [("verify", 0, o.verify_per_identity)])
                  for v in range(o.verify_identities)]
    total = o.identities * (o.per_identity + o.dev_per_identity) + o.verify_identities * o.verify_per_identity
    done = 0
    with log.progress() as bar:
        task = bar.add_task("drawing faces", total=total)
        if jobs == 1:
            for a in jobs_list:
                done += _identity_job(a)
                bar.update(task, completed=done)
        else:
            with worker_pool(jobs, _noop) as pool:
                for n in pool.imap_unordered(_identity_job, jobs_list, chunksize=4):
                    done += n
                    bar.update(task, completed=done)
    pairs = []
    if o.verify_identities and o.pairs:
        names = {identity_name(o.identities + v): [f"{identity_name(o.identities + v)}/"
                                                   f"{identity_name(o.identities + v)}_{j:04d}.png"
                                                   for j in range(o.verify_per_identity)]
                 for v in range(o.verify_identities)}
        pairs = make_pairs(names, o.pairs, o.seed)
        with atomic_write(out / "verify" / "pairs.txt") as f:
            f.writelines(f"{a} {b}\n" for a, b, _ in pairs)
        with atomic_write(out / "verify" / "pairs_labels.txt") as f:
            f.writelines(f"{lab}\n" for _, _, lab in pairs)
    images = {"train": o.identities * o.per_identity, "dev": o.identities * o.dev_per_identity,
              "verify": o.verify_identities * o.verify_per_identity}
    idents = {"train": o.identities, "dev": o.identities if o.dev_per_identity else 0,
              "verify": o.verify_identities}
    with atomic_write(out / "faces.yaml") as f:
        yaml.safe_dump({"command": "asrkit corpus faces", "options": asdict(o), "images": images,
                        "identities": idents, "pairs": len(pairs)}, f, sort_keys=False)
    return FacesResult(out, images, idents, len(pairs), time.monotonic() - t0)
