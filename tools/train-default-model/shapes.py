"""The easel-shapes world: palette, scene renderer and the seeded prompt grammar.

A scene is a dict {"background": colour, "objects": [{"colour", "shape", "size", "position"}, ...]}.
The TypeScript mirror (scene.ts) implements the same geometry for the evaluator's tests; the evaluation prompts
are generated here and written to eval-prompts.json, which both sides read.
"""
import math
import random

import numpy as np

W = 128

PALETTE = {
    "red": (0xDC, 0x1E, 0x1E),
    "orange": (0xF5, 0x82, 0x14),
    "yellow": (0xF5, 0xD7, 0x1E),
    "green": (0x28, 0xAA, 0x3C),
    "blue": (0x1E, 0x50, 0xDC),
    "purple": (0x82, 0x32, 0xB4),
    "pink": (0xF0, 0x78, 0xBE),
    "brown": (0x82, 0x50, 0x28),
    "black": (0x14, 0x14, 0x14),
    "white": (0xF0, 0xF0, 0xF0),
    "gray": (0x80, 0x80, 0x80),
    "cyan": (0x28, 0xC8, 0xDC),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle", "star"]
SIZES = ["small", "medium", "large"]
POSITIONS = ["center", "left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right"]

# Bounding-box width as a fraction of the image width.
SIZE_FRAC = {"small": 0.2, "medium": 0.4, "large": 0.6}
# (column, row) thirds: 0 = left/top, 1 = middle, 2 = right/bottom.
POS_CELL = {
    "center": (1, 1), "left": (0, 1), "right": (2, 1), "top": (1, 0), "bottom": (1, 2),
    "top left": (0, 0), "top right": (2, 0), "bottom left": (0, 2), "bottom right": (2, 2),
}
STAR_INNER = 0.45  # inner/outer radius of the five-pointed star


def shape_extent(shape, span):
    """(width, height) of the bounding box of a shape whose width is `span`."""
    if shape == "triangle":
        return span, span * math.sqrt(3) / 2
    if shape == "star":
        r = span / (2 * math.sin(math.radians(72)))
        return span, r * (1 + math.cos(math.radians(36)))
    return span, span


def place(rng, scene):
    """Concrete geometry for each object: (shape, rgb, cx, cy, span) with (cx, cy) the bounding-box centre."""
    out = []
    objs = scene["objects"]
    for i, o in enumerate(objs):
        span = SIZE_FRAC[o["size"]] * W * rng.uniform(0.92, 1.04)
        w, h = shape_extent(o["shape"], span)
        col, row = POS_CELL[o["position"]]
        c = []
        for axis, (idx, half) in enumerate(((col, w / 2), (row, h / 2))):
            lo, hi = idx * W / 3, (idx + 1) * W / 3
            jitter = 3 if len(objs) == 2 and axis == 0 else 6
            centre = (lo + hi) / 2 + rng.uniform(-jitter, jitter)
            centre = min(max(centre, half + 1), W - half - 1)   # inside the image
            centre = min(max(centre, lo + 1), hi - 1)           # inside its third
            c.append(centre)
        out.append((o["shape"], PALETTE[o["colour"]], c[0], c[1], span))
    return out


def shape_mask(shape, cx, cy, span, ss=4):
    """Boolean coverage mask (W x W) by supersampled point tests, thresholded at half coverage."""
    n = W * ss
    t = (np.arange(n) + 0.5) / ss
    x = t[None, :]
    y = t[:, None]
    w, h = shape_extent(shape, span)
    if shape == "circle":
        m = (x - cx) ** 2 + (y - cy) ** 2 <= (span / 2) ** 2
    elif shape == "square":
        m = (np.abs(x - cx) <= span / 2) & (np.abs(y - cy) <= span / 2)
    else:
        if shape == "triangle":
            top = cy - h / 2
            pts = [(cx, top), (cx + span / 2, top + h), (cx - span / 2, top + h)]
        else:
            r = span / (2 * math.sin(math.radians(72)))
            oy = cy - h / 2 + r  # centre of the star's circumcircle
            pts = []
            for k in range(10):
                rad = r if k % 2 == 0 else r * STAR_INNER
                a = math.radians(-90 + 36 * k)
                pts.append((cx + rad * math.cos(a), oy + rad * math.sin(a)))
        m = polygon_mask(pts, x, y)
    cov = m.reshape(W, ss, W, ss).mean(axis=(1, 3))
    return cov >= 0.5


def polygon_mask(pts, x, y):
    """Even-odd point-in-polygon over a grid."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    n = len(pts)
    for i in range(n):
        x1, y1 = pts[i]
        x2, y2 = pts[(i + 1) % n]
        if y1 == y2:
            continue
        cond = (y1 > y) != (y2 > y)
        xint = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (x < xint)
    return inside


def render(scene, rng):
    """RGB uint8 [W, W, 3]."""
    img = np.empty((W, W, 3), dtype=np.uint8)
    img[:] = PALETTE[scene["background"]]
    for shape, rgb, cx, cy, span in place(rng, scene):
        img[shape_mask(shape, cx, cy, span)] = rgb
    return img


# ---------------------------------------------------------------------------------------------------------------
# Prompt grammar

COLOUR_WORDS = {c: [c] for c in COLOURS}
COLOUR_WORDS["gray"] = ["gray", "grey"]
COLOUR_WORDS["purple"] = ["purple", "violet"]
SHAPE_WORDS = {"circle": ["circle", "disk"], "square": ["square"], "triangle": ["triangle"], "star": ["star"]}
PLURAL = {"circle": "circles", "disk": "disks", "square": "squares", "triangle": "triangles", "star": "stars"}
SIZE_WORDS = {"small": ["small", "tiny", "little"], "medium": ["medium", "medium-sized"], "large": ["large", "big", "huge"]}
POS_PHRASES = {
    "center": ["in the center", "in the middle", "in the centre", "centered", "at the center"],
    "left": ["on the left", "at the left", "on the left side", "to the left"],
    "right": ["on the right", "at the right", "on the right side", "to the right"],
    "top": ["at the top", "on top", "at the top of the image", "near the top"],
    "bottom": ["at the bottom", "on the bottom", "at the bottom of the image", "near the bottom"],
}
for _v in ("top", "bottom"):
    for _h in ("left", "right"):
        _p = f"{_v} {_h}"
        _up = {"top": "upper", "bottom": "lower"}[_v]
        POS_PHRASES[_p] = [f"in the {_p} corner", f"at the {_p}", f"in the {_p}", f"{_v}-{_h}", f"in the {_up} {_h} corner", f"{_up} {_h}"]


def _pick(rng, xs):
    return xs[rng.randrange(len(xs))]


def object_phrase(rng, o, article=True, with_size=True, plural=False):
    words = []
    if with_size and (o["size"] != "medium" or rng.random() < 0.15):
        words.append(_pick(rng, SIZE_WORDS[o["size"]]))
    words.append(_pick(rng, COLOUR_WORDS[o["colour"]]))
    shape = _pick(rng, SHAPE_WORDS[o["shape"]])
    words.append(PLURAL[shape] if plural else shape)
    if article and not plural:
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
    return " ".join(words)


def background_phrase(rng, bg):
    c = _pick(rng, COLOUR_WORDS[bg])
    return _pick(rng, [
        f" on a {c} background", f" on {c}", f", {c} background", f" with a {c} background",
        f" against a {c} background", f" on a {c} backdrop", f", on {c}", f" on {c} background",
    ])


def sample_scene(rng):
    """A random scene: background, then one object (62%), two different objects (28%) or two identical ones."""
    bg = "white" if rng.random() < 0.25 else _pick(rng, COLOURS)
    colours = [c for c in COLOURS if c != bg]
    kind = rng.random()
    if kind < 0.62:
        o = {"colour": _pick(rng, colours), "shape": _pick(rng, SHAPES),
             "size": _pick(rng, SIZES) if rng.random() < 0.7 else "medium",
             "position": _pick(rng, POSITIONS) if rng.random() < 0.75 else "center"}
        return {"background": bg, "objects": [o]}
    if kind < 0.9:
        objs = []
        for position in ("left", "right"):
            while True:
                o = {"colour": _pick(rng, colours), "shape": _pick(rng, SHAPES),
                     "size": "small" if rng.random() < 0.3 else "medium", "position": position}
                if not objs or (o["colour"], o["shape"], o["size"]) != (objs[0]["colour"], objs[0]["shape"], objs[0]["size"]):
                    break
            objs.append(o)
        return {"background": bg, "objects": objs}
    o = {"colour": _pick(rng, colours), "shape": _pick(rng, SHAPES), "size": "small" if rng.random() < 0.3 else "medium"}
    return {"background": bg, "objects": [dict(o, position="left"), dict(o, position="right")]}


def scene_prompt(scene, rng):
    """One of the many ways to ask for `scene`; defaults (white background, center, medium) may go unsaid."""
    bg = scene["background"]
    objs = scene["objects"]
    article = rng.random() < 0.7
    bgp = background_phrase(rng, bg) if bg != "white" or rng.random() < 0.4 else ""
    if len(objs) == 1:
        o = objs[0]
        obj = object_phrase(rng, o, article)
        pos = ""
        if o["position"] != "center" or rng.random() < 0.25:
            pos = _pick(rng, POS_PHRASES[o["position"]])
            bare = pos in ("top-left", "top-right", "bottom-left", "bottom-right", "upper left", "upper right",
                           "lower left", "lower right", "centered")
            pos = _pick(rng, [" " + pos, ", " + pos]) if bare else " " + pos
        if pos and bgp and rng.random() < 0.3:
            prompt = obj + bgp + ("," if not pos.startswith(",") and rng.random() < 0.5 else "") + pos
        else:
            prompt = obj + pos + bgp
    elif objs[0]["colour"] == objs[1]["colour"] and objs[0]["shape"] == objs[1]["shape"] and objs[0]["size"] == objs[1]["size"]:
        phrase = object_phrase(rng, objs[0], article=False, plural=True)
        prompt = _pick(rng, ["two ", "two ", "2 "]) + phrase + bgp
        if rng.random() < 0.3:
            prompt += _pick(rng, [" side by side", ", side by side"])
    else:
        a = object_phrase(rng, objs[0], article)
        b = object_phrase(rng, objs[1], article)
        join = _pick(rng, [" and ", " and ", ", ", " next to ", " beside ", " to the left of ", " left of "])
        prompt = a + join + b + bgp
    if rng.random() < 0.1:
        prompt = prompt[0].upper() + prompt[1:]
    return prompt


def sample_scene_and_prompt(rng):
    scene = sample_scene(rng)
    return scene_prompt(scene, rng), scene


def vocabulary_words():
    """Every word and punctuation mark the grammar can produce (lower case)."""
    words = set(["a", "an", "two", "2", "and", "next", "to", "beside", "the", "left", "of", "on", "with", "against",
                 "background", "backdrop", "side", "by", ",", "-"])
    for ws in list(COLOUR_WORDS.values()) + list(SHAPE_WORDS.values()) + list(SIZE_WORDS.values()):
        words.update(ws)
    words.update(PLURAL.values())
    for ps in POS_PHRASES.values():
        for p in ps:
            words.update(p.replace("-", " - ").split())
    words.update(["medium", "sized", "image", "picture"])
    return sorted(set(p for w in words for p in w.replace("-", " - ").split()))


if __name__ == "__main__":
    r = random.Random(0)
    for _ in range(30):
        print(sample_scene_and_prompt(r))
