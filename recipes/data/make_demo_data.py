#!/usr/bin/env python3
"""Generate mixtape's small, real-format demo data under ``recipes/data/``.

Every image is drawn here with Pillow from a scene description (shapes of known kind, colour, grid cell and
bounding box, or signs/receipts/charts with known text), and every caption, question and answer is computed
from that same description, so each one is true of its image as displayed (after applying any EXIF
orientation).  Long "books" are a procedurally generated encyclopedia of invented places.

Outputs (paths relative to this folder; see README.md):
    images/*.png|*.jpg                 24 images used by the JSONL sources
    caption/part-0.jsonl, part-1.jsonl caption pairs {"image", "caption"}
    llava/llava-mini.jsonl             LLaVA {"id", "image", "conversations": [{"from", "value"}]}
    sharegpt/messages-mini.jsonl       ShareGPT / LLaMA-Factory {"messages": [{"role", "content"}], "images"}
    books/encyclopedia-0.jsonl, -1     {"text"} long documents (about 200 to 6000 words)
    parquet/docs-mini.parquet          HF-datasets style: image struct<bytes, path>, question, answer, messages
    wds/shapes-000000.tar, -000001     WebDataset shards: KEY.jpg|png + KEY.json {"caption"}

Deterministic (fixed seeds, fixed tar metadata).  Byte-identical output needs the same Pillow and pyarrow
versions (JPEG/PNG encoders and the bundled default font); it was made with Pillow 13.0 and pyarrow 26.0.
To rerun::

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install pillow pyarrow
    /tmp/tokvenv/bin/python recipes/data/make_demo_data.py

The script deletes and rewrites the files it owns, then re-reads every output and checks it (images decode,
EXIF orientation gives the described layout, shape colours are where the captions say, Parquet schema and row
groups, tar member names).
"""

import io
import json
import math
import os
import random
import shutil
import sys
import tarfile

from PIL import Image, ImageDraw, ImageFont, ImageOps
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------------------------------------------
# Colours, shapes, positions
# --------------------------------------------------------------------------------------------------------------
COLOURS = {
    "red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (245, 215, 30),
    "orange": (245, 140, 20), "purple": (130, 50, 180), "black": (15, 15, 15), "white": (250, 250, 250),
    "gray": (128, 128, 128), "pink": (245, 150, 190), "brown": (125, 75, 35), "cyan": (40, 210, 220),
}
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "light gray": (215, 215, 215)}
# Shape colours not allowed on each background (too close to it).
EXCLUDE = {"white": {"white"}, "black": {"black"}, "light gray": {"white", "gray"}}
KINDS = ["circle", "square", "triangle", "star", "diamond", "hexagon", "rectangle"]
PLURAL = {k: k + "s" for k in KINDS}
NUM = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
# 3x3 grid cells (col, row) -> name and a prepositional phrase.
CELL_NAME = {(0, 0): "top left", (1, 0): "top center", (2, 0): "top right",
             (0, 1): "middle left", (1, 1): "center", (2, 1): "middle right",
             (0, 2): "bottom left", (1, 2): "bottom center", (2, 2): "bottom right"}
CELL_PHRASE = {(0, 0): "in the top left corner", (1, 0): "at the top center", (2, 0): "in the top right corner",
               (0, 1): "on the left", (1, 1): "in the center", (2, 1): "on the right",
               (0, 2): "in the bottom left corner", (1, 2): "at the bottom center",
               (2, 2): "in the bottom right corner"}


def cap(s):
    return s[:1].upper() + s[1:]


def join_list(items):
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def article(word):
    return "an" if word[0] in "aeiou" else "a"


class Shape:
    def __init__(self, kind, colour, cell, center, r, points=None, box=None):
        self.kind, self.colour, self.cell, self.center, self.r = kind, colour, cell, center, r
        self.points, self.box = points, box  # polygon points or ellipse/rect box, in display coordinates

    @property
    def bbox(self):
        if self.points:
            xs = [p[0] for p in self.points]
            ys = [p[1] for p in self.points]
            return (min(xs), min(ys), max(xs), max(ys))
        return self.box

    def name(self):
        return f"{self.colour} {self.kind}"


def make_shape(kind, colour, cell, w, h, rng):
    cw, ch = w / 3.0, h / 3.0
    cx = (cell[0] + 0.5) * cw + rng.uniform(-0.06, 0.06) * cw
    cy = (cell[1] + 0.5) * ch + rng.uniform(-0.06, 0.06) * ch
    r = 0.34 * min(cw, ch) * rng.uniform(0.85, 1.0)
    cx, cy, r = int(round(cx)), int(round(cy)), max(8, int(round(r)))
    pts = None
    box = None
    if kind == "circle":
        box = (cx - r, cy - r, cx + r, cy + r)
    elif kind == "square":
        box = (cx - r, cy - r, cx + r, cy + r)
    elif kind == "rectangle":  # clearly wider than tall
        hh = max(5, int(round(r * 0.5)))
        box = (cx - r, cy - hh, cx + r, cy + hh)
    elif kind == "triangle":
        pts = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    elif kind == "diamond":
        pts = [(cx, cy - r), (cx + int(round(0.7 * r)), cy), (cx, cy + r), (cx - int(round(0.7 * r)), cy)]
    elif kind == "hexagon":
        pts = [(cx + int(round(r * math.cos(math.radians(a)))), cy + int(round(r * math.sin(math.radians(a)))))
               for a in range(0, 360, 60)]
    elif kind == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else 0.45 * r
            a = math.radians(-90 + 36 * i)
            pts.append((cx + int(round(rr * math.cos(a))), cy + int(round(rr * math.sin(a)))))
    else:
        raise ValueError(kind)
    return Shape(kind, colour, cell, (cx, cy), r, pts, box)


class Scene:
    """A picture of shapes on a plain background; width/height are the DISPLAYED size."""

    def __init__(self, w, h, bg, shapes):
        self.w, self.h, self.bg, self.shapes = w, h, bg, shapes

    def render(self, mode="RGB"):
        im = Image.new("RGB", (self.w, self.h), BACKGROUNDS[self.bg])
        d = ImageDraw.Draw(im)
        for s in self.shapes:
            fill = COLOURS[s.colour]
            if s.kind == "circle":
                d.ellipse(s.box, fill=fill)
            elif s.kind in ("square", "rectangle"):
                d.rectangle(s.box, fill=fill)
            else:
                d.polygon(s.points, fill=fill)
        if mode != "RGB":
            im = im.convert(mode)
        return im

    # ---- text about the scene (all derived from the shape list) ----
    def by_kind(self):
        out = {}
        for s in self.shapes:
            out.setdefault(s.kind, []).append(s)
        return out

    def listing(self):
        return [f"{article(s.colour)} {s.colour} {s.kind} {CELL_PHRASE[s.cell]}" for s in self.shapes]

    def caption(self, style):
        n = len(self.shapes)
        if style == 0:
            if n == 1:
                s = self.shapes[0]
                return f"A single {s.colour} {s.kind} {CELL_PHRASE[s.cell]} of a {self.bg} background."
            return f"{cap(NUM[n])} shapes on a {self.bg} background: {join_list(self.listing())}."
        if style == 1:
            parts = []
            for kind, ss in self.by_kind().items():
                cols = [s.colour for s in ss]
                if len(ss) == 1:
                    parts.append((f"one {kind}", f"the {kind} is {cols[0]}"))
                elif len(set(cols)) == 1:
                    parts.append((f"{NUM[len(ss)]} {PLURAL[kind]}",
                                  f"the {PLURAL[kind]} are {'both' if len(ss) == 2 else 'all'} {cols[0]}"))
                else:
                    parts.append((f"{NUM[len(ss)]} {PLURAL[kind]}", f"the {PLURAL[kind]} are {join_list(cols)}"))
            verb = "is" if parts[0][0].startswith("one ") else "are"
            return (f"There {verb} {join_list([p[0] for p in parts])} on a {self.bg} background; "
                    f"{join_list([p[1] for p in parts])}.")
        # style 2: reading order, row by row
        rows = []
        for r, rname in enumerate(["top", "middle", "bottom"]):
            ss = sorted([s for s in self.shapes if s.cell[1] == r], key=lambda s: s.cell[0])
            if ss:
                items = [f"{article(s.colour)} {s.colour} {s.kind}" for s in ss]
                rows.append(f"the {rname} row has {join_list(items)}")
            else:
                rows.append(f"the {rname} row is empty")
        return f"A {self.w}x{self.h} picture with a {self.bg} background. From left to right, " + "; ".join(rows) + "."

    def qa_pool(self, rng):
        """Question/answer pairs that are all true of the scene, mostly about what is there."""
        pos, neg = [], []
        bk = self.by_kind()
        n = len(self.shapes)
        pos.append(("How many shapes are there in total?",
                    f"There {'is' if n == 1 else 'are'} {NUM[n]} shape{'s' if n != 1 else ''}."))
        pos.append(("What colour is the background?", f"The background is {self.bg}."))
        for kind in KINDS:
            k = len(bk.get(kind, []))
            if k == 0:
                neg.append((f"How many {PLURAL[kind]} are there?", f"There are no {PLURAL[kind]}."))
                neg.append((f"Is there {article(kind)} {kind} in the image?", f"No, there is no {kind}."))
                continue
            pos.append((f"How many {PLURAL[kind]} are there?",
                        f"There {'is' if k == 1 else 'are'} {NUM[k]} {kind if k == 1 else PLURAL[kind]}."))
            pos.append((f"Is there {article(kind)} {kind} in the image?",
                        f"Yes, there {'is' if k == 1 else 'are'} {NUM[k]}."))
            if k == 1:
                pos.append((f"What colour is the {kind}?", f"The {kind} is {bk[kind][0].colour}."))
            else:
                cols = [s.colour for s in bk[kind]]
                pos.append((f"What colours are the {PLURAL[kind]}?",
                            f"The {PLURAL[kind]} are " + (f"all {cols[0]}." if len(set(cols)) == 1
                                                          else join_list(cols) + ".")))
        names = [s.name() for s in self.shapes]
        for s in self.shapes:
            if names.count(s.name()) == 1:
                pos.append((f"Where is the {s.name()}?", f"The {s.name()} is {CELL_PHRASE[s.cell]}."))
                x0, y0, x1, y1 = s.bbox
                pos.append((f"Give the bounding box of the {s.name()} in pixel coordinates.",
                            f"({x0}, {y0}), ({x1}, {y1})"))
        for cell, cname in CELL_NAME.items():
            ss = [s for s in self.shapes if s.cell == cell]
            q = f"Divide the image into a 3x3 grid. What is in the {cname} cell?"
            if ss:
                pos.append((q, f"{cap(article(ss[0].colour))} {ss[0].name()}."))
            else:
                neg.append((q, "Nothing, that cell is empty."))
        colours = sorted({s.colour for s in self.shapes})
        pos.append(("Which colours do the shapes have?", cap(join_list(colours)) + "."))
        rng.shuffle(pos)
        rng.shuffle(neg)
        # Mostly positive questions, with an occasional one about something absent.
        out = []
        while pos or neg:
            take_neg = neg and (not pos or rng.random() < 0.2)
            out.append(neg.pop() if take_neg else pos.pop())
        return out


def random_scene(rng, w, h, nmin=1, nmax=6, bg=None):
    bg = bg or rng.choice(list(BACKGROUNDS))
    n = rng.randint(nmin, nmax)
    cells = rng.sample(sorted(CELL_NAME), n)
    ok_colours = [c for c in COLOURS if c not in EXCLUDE[bg]]
    kinds = rng.sample(KINDS, rng.randint(1, min(3, n)))  # few kinds, so that counting questions are interesting
    shapes = [make_shape(rng.choice(kinds), rng.choice(ok_colours), cell, w, h, rng) for cell in cells]
    shapes.sort(key=lambda s: (s.cell[1], s.cell[0]))
    return Scene(w, h, bg, shapes)


# --------------------------------------------------------------------------------------------------------------
# Text images (signs, receipts, forms, bar charts)
# --------------------------------------------------------------------------------------------------------------
def font(size):
    return ImageFont.load_default(size=size)


def fit_font(draw, lines, max_w, max_h, start):
    size = start
    while size > 8:
        f = font(size)
        ws = [draw.textbbox((0, 0), ln, font=f)[2] for ln in lines]
        if max(ws) <= max_w and size * 1.3 * len(lines) <= max_h:
            return f, size
        size -= 1
    return font(8), 8


class TextImage:
    def __init__(self, w, h, bg, fg, lines, kind, qa, caption, align="center"):
        self.w, self.h, self.bg, self.fg, self.lines = w, h, bg, fg, lines
        self.kind, self._qa, self._caption, self.align = kind, qa, caption, align

    def render(self, mode="RGB"):
        im = Image.new("RGB", (self.w, self.h), COLOURS.get(self.bg, BACKGROUNDS.get(self.bg)))
        d = ImageDraw.Draw(im)
        f, size = fit_font(d, self.lines, self.w * 0.88, self.h * 0.85, start=max(12, self.h // (len(self.lines) + 1)))
        line_h = int(size * 1.3)
        y = (self.h - line_h * len(self.lines)) // 2
        for ln in self.lines:
            tw = d.textbbox((0, 0), ln, font=f)[2]
            x = (self.w - tw) // 2 if self.align == "center" else int(self.w * 0.06)
            d.text((x, y), ln, font=f, fill=COLOURS[self.fg])
            y += line_h
        return im.convert(mode) if mode != "RGB" else im

    def caption(self, style=0):
        return self._caption

    def qa_pool(self, rng):
        qa = list(self._qa)
        rng.shuffle(qa)
        return qa


SIGN_TEXTS = ["FRESH BREAD DAILY", "NO PARKING", "OPEN 9AM - 5PM", "EXIT", "Platform 3", "SALE 50% OFF",
              "Caution: Wet Floor", "Gate B12", "Welcome to the Museum", "Room 204", "Speed Limit 30", "Fragile"]
SIGN_COLOURS = [("yellow", "black"), ("blue", "white"), ("white", "red"), ("green", "white"), ("black", "yellow"),
                ("red", "white"), ("orange", "black"), ("cyan", "black"), ("purple", "white"), ("white", "blue")]


def sign_image(rng, w, h, text=None):
    text = text or rng.choice(SIGN_TEXTS)
    bg, fg = rng.choice(SIGN_COLOURS)
    words = text.split()
    lines = [text] if w >= 2 * h or len(words) == 1 else [" ".join(words[: (len(words) + 1) // 2]),
                                                          " ".join(words[(len(words) + 1) // 2:])]
    caption = f'{cap(article(bg))} {bg} sign with {fg} text that reads "{text}".'
    qa = [("What does the sign say?", f'It says "{text}".'),
          ("Read the text in the image.", text),
          ("What colour is the sign?", f"The sign is {bg}."),
          ("What colour are the letters?", f"The letters are {fg}.")]
    return TextImage(w, h, bg, fg, lines, "sign", qa, caption)


MENU = [("Coffee", 280), ("Tea", 220), ("Croissant", 250), ("Orange juice", 340), ("Soup", 450), ("Salad", 620),
        ("Sandwich", 575), ("Muffin", 195), ("Water", 120), ("Cake", 380)]


def money(c):
    return f"{c // 100}.{c % 100:02d}"


def receipt_image(rng, w, h):
    items = rng.sample(MENU, rng.randint(2, 4))
    qty = [rng.randint(1, 3) for _ in items]
    lines = ["RECEIPT"]
    total = 0
    for (name, price), q in zip(items, qty):
        lines.append(f"{q} x {name}  {money(q * price)}")
        total += q * price
    lines.append(f"TOTAL  {money(total)}")
    first = items[0][0]
    qa = [("What is the total on the receipt?", f"The total is {money(total)}."),
          ("How many different items are on the receipt?", f"{cap(NUM[len(items)])}: "
                                                           f"{join_list([n for n, _ in items])}."),
          (f"How much was paid for the {first.lower()}?", f"{money(qty[0] * items[0][1])}."),
          ("Transcribe the receipt.", "\n".join(lines))]
    caption = (f"A printed receipt listing {join_list([n.lower() for n, _ in items])}, "
               f"with a total of {money(total)}.")
    return TextImage(w, h, "white", "black", lines, "receipt", qa, caption, align="left")


def form_image(rng, w, h):
    inv = rng.randint(10000, 99999)
    y, m, d = rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
    amount = rng.randint(2000, 99999)
    name = rng.choice(["A. Moreau", "J. Okafor", "L. Chen", "M. Rossi", "S. Novak", "K. Tanaka"])
    lines = [f"Invoice No. {inv}", f"Date: {y}-{m:02d}-{d:02d}", f"Customer: {name}", f"Amount due: {money(amount)}"]
    qa = [("What is the invoice number?", str(inv)),
          ("What is the date on the invoice?", f"{y}-{m:02d}-{d:02d}"),
          ("Who is the customer?", name),
          ("How much is due?", f"{money(amount)}"),
          ("Transcribe the document.", "\n".join(lines))]
    caption = f"An invoice, number {inv}, for {name}, dated {y}-{m:02d}-{d:02d}, with {money(amount)} due."
    return TextImage(w, h, "white", "black", lines, "form", qa, caption, align="left")


class Chart:
    """A bar chart; bars have distinct colours and heights, labelled A, B, C..."""

    def __init__(self, rng, w, h):
        self.w, self.h = w, h
        n = rng.randint(3, 5)
        self.values = rng.sample(range(2, 10), n)
        self.colours = rng.sample([c for c in COLOURS if c not in ("white",)], n)
        self.labels = "ABCDE"[:n]

    def render(self, mode="RGB"):
        im = Image.new("RGB", (self.w, self.h), (255, 255, 255))
        d = ImageDraw.Draw(im)
        n = len(self.values)
        base = int(self.h * 0.85)
        top = int(self.h * 0.08)
        unit = (base - top) / 10.0
        slot = self.w * 0.9 / n
        f = font(max(10, int(self.h * 0.08)))
        d.line([(int(self.w * 0.05), base), (int(self.w * 0.95), base)], fill=(0, 0, 0), width=2)
        for i, (v, c, lab) in enumerate(zip(self.values, self.colours, self.labels)):
            x0 = int(self.w * 0.05 + slot * i + slot * 0.2)
            x1 = int(self.w * 0.05 + slot * (i + 1) - slot * 0.2)
            d.rectangle([x0, int(base - v * unit), x1, base - 1], fill=COLOURS[c])
            tw = d.textbbox((0, 0), lab, font=f)[2]
            d.text(((x0 + x1 - tw) // 2, base + 3), lab, font=f, fill=(0, 0, 0))
        return im.convert(mode) if mode != "RGB" else im

    def caption(self, style=0):
        parts = [f"{lab} ({c})" for lab, c in zip(self.labels, self.colours)]
        return f"A bar chart with {NUM[len(self.values)]} bars labelled {join_list(parts)}."

    def qa_pool(self, rng):
        hi = max(range(len(self.values)), key=lambda i: self.values[i])
        lo = min(range(len(self.values)), key=lambda i: self.values[i])
        qa = [("Which bar is the tallest?", f"Bar {self.labels[hi]}, the {self.colours[hi]} one."),
              ("Which bar is the shortest?", f"Bar {self.labels[lo]}, the {self.colours[lo]} one."),
              ("How many bars are in the chart?", f"{cap(NUM[len(self.values)])}."),
              (f"What colour is bar {self.labels[0]}?", f"It is {self.colours[0]}.")]
        rng.shuffle(qa)
        return qa


# --------------------------------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------------------------------
def encode(im, fmt, orientation=None):
    """Encode a displayed image. With an EXIF orientation, store the pixels so that applying it gives `im`."""
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, format="PNG", optimize=True)
    else:
        if orientation:
            inverse = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
            stored = im.transpose(inverse[orientation])
            exif = Image.Exif()
            exif[0x0112] = orientation
            stored.save(buf, format="JPEG", quality=85, exif=exif.tobytes())
        else:
            im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def check_scene_bytes(data, scene, label):
    """Decode as a viewer would (apply EXIF orientation) and check size and the colour at each shape centre."""
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert im.size == (scene.w, scene.h), (label, im.size, scene.w, scene.h)
    if not isinstance(scene, Scene):
        return
    for s in scene.shapes:
        px = im.getpixel(s.center)
        want = COLOURS[s.colour]
        assert sum(abs(a - b) for a, b in zip(px, want)) < 120, (label, s.name(), px, want)


def dumps(rec):
    return json.dumps(rec, ensure_ascii=False)


def write_jsonl(path, recs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in recs:
            f.write(dumps(r) + "\n")


# --------------------------------------------------------------------------------------------------------------
# The 24 shared images
# --------------------------------------------------------------------------------------------------------------
# (name, width, height, kind, extra) -- width/height as displayed.
IMAGE_PLAN = [
    ("shapes-00.png", 224, 224, "scene", {}),
    ("shapes-01.jpg", 640, 480, "scene", {"nmin": 4, "nmax": 7}),
    ("shapes-02.png", 96, 96, "scene", {"nmin": 1, "nmax": 2}),
    ("shapes-03.jpg", 320, 240, "scene", {}),
    ("shapes-04.png", 480, 160, "scene", {}),
    ("shapes-05.jpg", 150, 400, "scene", {}),
    ("shapes-06.png", 300, 300, "scene", {"nmin": 5, "nmax": 8}),
    ("shapes-07.jpg", 256, 192, "scene", {"nmin": 1, "nmax": 1}),
    ("exif6-08.jpg", 320, 200, "exif", {"orientation": 6}),
    ("shapes-09.png", 400, 300, "scene", {"gray": True}),
    ("shapes-10.png", 200, 120, "scene", {"rgba": True}),
    ("shapes-11.jpg", 360, 360, "scene", {}),
    ("sign-12.png", 320, 120, "sign", {"text": "FRESH BREAD DAILY"}),
    ("sign-13.jpg", 200, 200, "sign", {"text": "NO PARKING"}),
    ("receipt-14.png", 240, 320, "receipt", {}),
    ("shapes-15.jpg", 512, 384, "scene", {}),
    ("shapes-16.png", 128, 256, "scene", {}),
    ("exif8-17.jpg", 240, 160, "exif", {"orientation": 8}),
    ("shapes-18.jpg", 600, 200, "scene", {}),
    ("sign-19.png", 280, 140, "sign", {"text": "OPEN 9AM - 5PM"}),
    ("shapes-20.png", 180, 180, "scene", {"nmin": 3, "nmax": 6}),
    ("shapes-21.jpg", 448, 336, "scene", {}),
    ("chart-22.png", 320, 240, "chart", {}),
    ("form-23.jpg", 360, 220, "form", {}),
]


def exif_scene(w, h, rng):
    """A left/right layout whose caption becomes false if the EXIF orientation is ignored."""
    left = make_shape("circle", "red", (0, 1), w, h, rng)
    right = make_shape("square", "blue", (2, 1), w, h, rng)
    top = make_shape("star", "green", (1, 0), w, h, rng)
    return Scene(w, h, "white", [top, left, right])


def build_images(rng):
    items = {}
    for name, w, h, kind, extra in IMAGE_PLAN:
        fmt = name.rsplit(".", 1)[1].replace("jpg", "jpeg")
        mode = "RGB"
        if kind == "scene":
            if extra.get("gray"):
                # grayscale PNG: only achromatic colours
                bg = "white"
                n = rng.randint(3, 5)
                cells = rng.sample(sorted(CELL_NAME), n)
                shapes = [make_shape(rng.choice(KINDS), rng.choice(["black", "gray"]), c, w, h, rng) for c in cells]
                shapes.sort(key=lambda s: (s.cell[1], s.cell[0]))
                obj = Scene(w, h, bg, shapes)
                mode = "L"
            else:
                obj = random_scene(rng, w, h, extra.get("nmin", 1), extra.get("nmax", 6))
                if extra.get("rgba"):
                    mode = "RGBA"  # fully opaque alpha channel
        elif kind == "exif":
            obj = exif_scene(w, h, rng)
        elif kind == "sign":
            obj = sign_image(rng, w, h, extra.get("text"))
        elif kind == "receipt":
            obj = receipt_image(rng, w, h)
        elif kind == "form":
            obj = form_image(rng, w, h)
        elif kind == "chart":
            obj = Chart(rng, w, h)
        else:
            raise ValueError(kind)
        im = obj.render(mode)
        data = encode(im, "png" if fmt == "png" else "jpeg", extra.get("orientation"))
        items[name] = (obj, data)
    return items


# --------------------------------------------------------------------------------------------------------------
# Books: a procedurally generated encyclopedia of invented places
# --------------------------------------------------------------------------------------------------------------
# Each article describes one invented place.  Its facts (river, neighbours, soil, buildings and their dates,
# people) are fixed once per place and reused, history is told in chronological order with events that fit
# their era, and landmarks, people and nearby villages are never repeated within an article.
SYL = ["ar", "bel", "cor", "dan", "el", "fen", "gar", "hal", "ith", "jor", "kel", "lum", "mar", "nor", "os", "pel",
       "quin", "ros", "sal", "tor", "ul", "ven", "wen", "yar", "zel", "bra", "cal", "dor", "est", "fal", "har",
       "ist", "kar", "lin", "mer", "nal", "orm", "pra", "rin", "sel", "tam", "ur", "val", "wyn", "ash", "brim"]
GOODS = ["wool", "salt", "timber", "cheese", "wine", "copper", "glass", "pottery", "linen", "apples", "honey",
         "leather", "paper", "rope", "barley", "olive oil", "iron tools", "dyed cloth", "dried fish", "clocks"]
TRADES = ["weavers", "potters", "fishermen", "miners", "shepherds", "glassblowers", "carpenters", "brewers",
          "tanners", "beekeepers", "stonemasons", "ropemakers", "dyers", "coopers"]
PROFESSIONS = ["poet", "engineer", "physician", "painter", "astronomer", "merchant", "composer", "botanist",
               "mapmaker", "historian", "architect", "teacher", "inventor", "judge", "singer", "mathematician"]
# (building, earliest plausible year of construction)
BUILDINGS = [("stone bridge", 900), ("old monastery", 900), ("parish church", 900), ("covered market", 1200),
             ("town hall", 1250), ("granary", 1100), ("watermill", 1000), ("clock tower", 1350),
             ("harbour wall", 1100), ("salt warehouse", 1300), ("grammar school", 1450), ("observatory", 1650),
             ("theatre", 1600), ("botanical garden", 1600), ("public library", 1850), ("railway station", 1845),
             ("school of music", 1800), ("museum of local history", 1880), ("swimming pool", 1890),
             ("concert hall", 1880)]
MATERIALS = ["grey limestone", "red brick", "timber and plaster", "dark basalt", "yellow sandstone", "flint and chalk"]
STONES = ["grey limestone", "dark basalt", "yellow sandstone"]
OPEN_AIR = {"stone bridge", "harbour wall", "botanical garden"}  # no roof, no bell
BELLS = {"clock tower", "parish church", "old monastery", "town hall"}
DETAILS = ["has a steep slate roof", "is decorated with carved animals", "was restored after a fire in the last century",
           "is open to visitors in summer", "contains a small collection of paintings", "has a famous echo",
           "is lit with lanterns during the fair", "leans slightly towards the river"]
FEATURES = ["a chain of low hills", "a shallow lake", "a rocky coast", "a wide marsh", "a forested ridge",
            "a narrow gorge", "a chalk plateau", "a belt of old oak woods"]
DIRS = ["north", "south", "east", "west"]
SEASONS = ["spring", "summer", "autumn", "winter"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def pname(rng, n=None):
    n = n or rng.choice([2, 2, 3])
    return "".join(rng.choice(SYL) for _ in range(n)).capitalize()


def person(rng):
    return f"{pname(rng, 2)} {pname(rng, rng.choice([2, 3]))}"


class Place:
    def __init__(self, rng):
        self.name = pname(rng)
        self.kind = rng.choice(["town", "city", "market town", "port", "village"])
        self.region = pname(rng)
        self.river = pname(rng, 2)
        self.neighbours = [pname(rng) for _ in range(4)]
        self.founded = rng.randint(800, 1300)
        self.population = rng.randint(2, 400) * 250
        if self.kind == "village":
            self.population = rng.randint(2, 40) * 50
        self.goods = rng.sample(GOODS, 4)
        self.trades = rng.sample(TRADES, 3)
        self.feature = rng.choice(FEATURES)
        self.elevation = rng.randint(3, 900)
        self.rain = rng.randint(400, 1600)
        self.summer = rng.randint(17, 31)
        self.winter = rng.randint(-9, 11)
        self.soil = rng.choice(["sandy", "heavy clay", "rich and dark", "thin and stony"])
        self.crop = rng.choice(["barley", "vines", "orchards", "grazing sheep", "potatoes", "hay meadows"])
        self.flow = rng.choice(DIRS)
        self.rise = rng.choice(DIRS)
        self.festival = f"{pname(rng, 2)} Fair"
        self.festival_month = rng.choice(MONTHS)
        self.festival_days = rng.randint(2, 9)
        self.dish = rng.choice(["bean stew", "smoked trout", "barley bread", "apple cake", "mutton pie", "onion soup",
                                "honey biscuits"])
        self.founder = person(rng)
        # buildings with fixed construction years, sorted by year
        self.buildings = []
        for b, earliest in rng.sample(BUILDINGS, len(BUILDINGS)):
            lo = max(earliest, self.founded + 10)
            if lo < 1990:
                if b in OPEN_AIR:
                    mat, det = rng.choice(STONES), rng.choice(["is lit with lanterns during the fair",
                                                              "was repaired after a great flood",
                                                              "is a favourite place for an evening walk"])
                else:
                    mat, det = rng.choice(MATERIALS), rng.choice(DETAILS)
                self.buildings.append((b, rng.randint(lo, min(1990, lo + 300)), mat, det))
        self.central = self.buildings[0][0]
        self.used_people = set()
        self.used_villages = set()
        self.landmark_i = 0
        self.history_events = None
        self.history_i = 0


# (earliest year, latest year, once, template).  Events marked once happen at most once per place.
# {b} is any building already standing that year; {hall} one that can shelter people.
HALLS = {"old monastery", "parish church", "town hall", "covered market", "grammar school", "granary", "theatre",
         "concert hall", "school of music"}
EVENTS = [
    (800, 1500, False, "In {y} a fire destroyed much of the {quarter}, and the houses were rebuilt in stone."),
    (900, 1600, True, "In {y} {name} was granted the right to hold a weekly market, and traders came from {n1} and {n2}."),
    (900, 1700, False, "In {y} a dispute with {n1} over {rights} was settled by a treaty."),
    (900, 1850, False, "The harvest failed in {y}, and many families left for the towns of {region}."),
    (1000, 1600, True, "In {y} the {trade} of {name} formed a guild and set rules for apprentices and prices."),
    (1000, 1720, False, "An epidemic in {y} killed {share} of the population; the sick were cared for in the {hall}."),
    (900, 1650, False, "In {y} the lord of {n1} besieged {name} for {k} weeks but failed to take it."),
    (1500, 1800, True, "The first printed map of {name} appeared in {y}; it shows {k} streets and the {b}."),
    (900, 2020, False, "In {y} a flood on the {river} damaged {damage}, and the council raised the embankment."),
    (1300, 1900, True, "{person}, a wealthy dealer in {g}, founded a school for poor children in {y}."),
    (1600, 1900, True, "In {y} the road to {n1} was paved, cutting the journey from two days to one."),
    (1200, 1900, True, "Trade in {g} grew rapidly after {y}, and warehouses were built along the river."),
    (1500, 1900, False, "A visiting scholar, {person}, described {name} in {y} as {praise}."),
    (1800, 1960, False, "In {y} the townspeople elected a new council, led by {person}."),
    (900, 2020, False, "In {y} a severe winter froze the {river} for {k} weeks, and a fair was held on the ice."),
    (1550, 1950, False, "During the war of {y} soldiers were quartered in the {hall}, and trade almost stopped."),
    (1885, 1935, True, "In {y} electricity reached the main streets, and the {b} was lit at night for the first time."),
    (1820, 1880, True, "Gas lamps were installed along the river front in {y}."),
    (1600, 1800, True, "In {y} a canal was dug to link the {river} with the harbour of {n1}."),
    (1620, 1900, True, "The first newspaper of {name} was printed in {y}; it appeared every {day}."),
    (1800, 1950, False, "A factory making {g} opened near the river in {y} and soon employed {k} hundred workers."),
    (1850, 1920, True, "Many young people emigrated overseas after {y}, and the population fell for a generation."),
    (1850, 1905, True, "A telegraph office opened in {y}, next to the {b}."),
    (1950, 2020, True, "In {y} a bypass was built, and the old centre became quieter."),
    (1960, 2020, True, "A college opened on the edge of {name} in {y}, bringing students from across {region}."),
    (1950, 2020, True, "In {y} the {festival} was revived after a long pause, and crowds returned to the square."),
    (1950, 2020, True, "In {y} the main street was closed to cars and planted with trees."),
    (1950, 2020, True, "In {y} the last working {trade2} workshop closed, but the craft is still taught at evening classes."),
    (1960, 2020, True, "{name} was twinned with the town of {n3} in {y}."),
    (1100, 1800, False, "In {y} {person} became abbot of the monastery and enlarged its library."),
    (1200, 1900, False, "A new well was dug in the {quarter} in {y} after a dry summer."),
    (1400, 1950, False, "In {y} the council bought land near {n1} and planted {trees}."),
    (1700, 2000, False, "In {y} a storm tore the roof from the {roofed}, and it was repaired the following year."),
]
QUARTERS = ["old quarter", "lower town", "river quarter", "market quarter", "tanners' lane"]
RIGHTS = ["fishing rights on the river", "grazing on the common meadows", "tolls on the bridge",
          "timber from the forest", "the boundary stones"]
DAMAGES = ["the mills", "the lower town", "the bridge", "the harvest", "the riverside warehouses"]
SHARES = ["nearly a fifth", "about a tenth", "almost a third", "a quarter"]
PRAISES = ["clean, busy and full of craftsmen", "poor but welcoming", "the prettiest town in the valley",
           "noisy on market days and silent on Sundays"]
TREES = ["an orchard", "a row of lime trees", "a small forest of beech", "a vineyard"]
DAYS = ["Saturday", "Wednesday", "Friday", "Monday"]


def plan_history(p, r, n_events):
    """Chronological (year, sentence) events from foundation to 2020, each fitting its year."""
    years = sorted(r.sample(range(p.founded + 5, 2021), min(n_events, 2020 - p.founded - 5)))
    events = []
    builds = {y: b for b, y, _, _ in p.buildings}
    used = set()
    last = None
    for y in years:
        if y in builds:
            continue  # told below
        standing = [b for b, by, _, _ in p.buildings if by < y]
        halls = [b for b in standing if b in HALLS]
        roofed = [b for b in standing if b not in OPEN_AIR]
        ok = [t for lo, hi, once, t in EVENTS if lo <= y <= hi and t != last and t not in used
              and ("{b}" not in t or standing) and ("{hall}" not in t or halls)
              and ("{roofed}" not in t or roofed)]
        if not ok:
            continue
        t = r.choice(ok)
        last = t
        if next(once for _, _, once, tt in EVENTS if tt == t):
            used.add(t)
        n1, n2 = r.sample(p.neighbours, 2)
        events.append((y, t.format(y=y, name=p.name, n1=n1, n2=n2, n3=pname(r),
                                   b=r.choice(standing) if standing else "", hall=r.choice(halls) if halls else "",
                                   roofed=r.choice(roofed) if roofed else "",
                                   g=r.choice(p.goods), river=p.river, region=p.region, trade=r.choice(p.trades),
                                   trade2=r.choice(p.trades)[:-1], k=NUM[r.randint(2, 12)], person=person(r),
                                   festival=p.festival, day=r.choice(DAYS), quarter=r.choice(QUARTERS),
                                   rights=r.choice(RIGHTS), damage=r.choice(DAMAGES), share=r.choice(SHARES),
                                   praise=r.choice(PRAISES), trees=r.choice(TREES))))
    for b, y, _, _ in p.buildings:  # every building's completion, in its year
        events.append((y, f"The {b} was completed in {y}."))
    events.sort(key=lambda e: e[0])  # stable: same-year events keep their order
    return [text for _, text in events]


def intro(p, r):
    return (f"{p.name} is a {p.kind} in the region of {p.region}, on the banks of the river {p.river}. "
            f"It lies about {r.randint(8, 90)} kilometres from {p.neighbours[0]} and has a population of "
            f"roughly {p.population:,}. The {p.kind} is known for its {p.goods[0]} and {p.goods[1]}, for the "
            f"{p.central} that stands near its centre, and for the {p.festival}, which is held every "
            f"{p.festival_month}.")


def geography(p, r):
    s = [f"{p.name} stands at an elevation of about {p.elevation} metres, between {p.feature} and the valley "
         f"of the {p.river}.",
         f"The river {p.river} rises in the hills north of {p.neighbours[1]} and flows {p.flow} through the "
         f"{p.kind} before joining a larger river near {p.neighbours[2]}.",
         f"The soil around {p.name} is {p.soil}, which suits {p.crop}.",
         f"To the {p.rise} the land rises gently towards {p.neighbours[3]}, and on a clear day the hills of "
         f"{p.region} can be seen from the {p.central}.",
         f"The old centre is built on a low terrace above the flood plain, while the newer streets spread "
         f"along the road to {p.neighbours[0]}."]
    return " ".join(s)


def climate(p, r):
    return (f"The climate of {p.name} is {'mild' if p.winter > 2 else 'cold in winter'} and "
            f"{'dry' if p.rain < 700 else 'wet'}. The average temperature is about {p.summer} degrees in July "
            f"and {p.winter} degrees in January, and about {p.rain} millimetres of rain fall in a typical year, "
            f"most of it in {r.choice(SEASONS)}. "
            + r.choice([f"Fog often gathers over the {p.river} on autumn mornings.",
                        "Strong winds from the west sometimes damage roofs and orchards.",
                        "Snow is rare in the valley but common on the surrounding hills.",
                        "Long dry spells in summer have made water a frequent subject of local politics."]))


def history(p, r):
    """One paragraph of 3-5 events, continuing the chronology; None when it is exhausted."""
    if p.history_i >= len(p.history_events):
        return None
    sents = []
    if p.history_i == 0:
        sents.append(f"According to tradition, {p.name} was founded in {p.founded} by {p.founder}, who built a "
                     f"wooden hall on the terrace above the {p.river}. Archaeologists have found older traces of "
                     f"settlement, including pottery and a "
                     f"{r.choice(['bronze brooch', 'stone axe', 'burial mound', 'timber well'])}.")
    k = r.randint(3, 5)
    sents += p.history_events[p.history_i:p.history_i + k]
    p.history_i += k
    return " ".join(sents)


def economy(p, r):
    return (f"The economy of {p.name} has long depended on {p.goods[0]} and {p.goods[1]}. "
            f"{cap(p.trades[0])} still work in small workshops around the market square, and about "
            f"{r.randint(5, 60)} per cent of the working population is employed in "
            f"{r.choice(['farming', 'crafts', 'trade', 'tourism', 'light industry', 'transport'])}. "
            f"{r.choice(['In recent years', 'Since the bypass was built', 'After the old mills closed', 'Today'])}, "
            f"{r.choice(['tourism has grown steadily', 'several small firms have opened', 'the market has shrunk', 'young people have returned to start businesses'])}, "
            f"and {p.goods[2]} from {p.name} is sold as far away as {r.choice(p.neighbours)}.")


def landmark(p, r):
    if p.landmark_i >= len(p.buildings):
        return None
    b, y, mat, det = p.buildings[p.landmark_i]
    p.landmark_i += 1
    who = r.choice(["by local masons", "with money from the guilds", "on the orders of the council",
                    "by a wealthy family"])
    stories = ["a tunnel once connected it to the river", "its first keeper lived there for sixty years",
               "it was built in a single summer", f"a stone from it was taken to {r.choice(p.neighbours)} as a souvenir"]
    if b in BELLS:
        stories.append(f"its bell could once be heard in {r.choice(p.neighbours)}")
    story = r.choice(stories)
    made = f"It is enclosed by a wall of {mat}" if b == "botanical garden" else f"It is made of {mat}"
    return (f"The {b} of {p.name} was completed in {y} {who}. {made} and {det}. "
            f"{r.choice(['Local children are told', 'Guides like to say', 'An old story claims'])} that {story}.")


def culture(p, r):
    return (f"The {p.festival} takes place every {p.festival_month} and lasts {NUM[p.festival_days]} days. "
            f"{r.choice(['Musicians', 'Dancers', 'Traders', 'Storytellers'])} come from across {p.region}, and the "
            f"{p.trades[1]} of {p.name} display their work in the streets. "
            f"A traditional dish of the {p.kind} is {p.dish}, usually served with "
            f"{r.choice(['dark beer', 'local wine', 'cider', 'sour milk', 'herb tea'])}. "
            f"The local dialect has many words for {r.choice(['rain', 'mud', 'wool', 'fish', 'wind', 'snow'])}.")


def notable(p, r):
    who = person(r)
    while who in p.used_people:
        who = person(r)
    p.used_people.add(who)
    born = r.randint(p.founded + 50, 1960)
    died = born + r.randint(35, 90)
    life = f"{born}-{died}" if died <= 2020 else f"born {born}"
    pron, poss = r.choice([("she", "her"), ("he", "his"), ("they", "their")])
    prof = r.choice(PROFESSIONS)
    return (f"{who} ({life}) was {article(prof)} {prof} born in {p.name}. "
            f"{r.choice(['After studying in', 'After moving to', 'Having trained in'])} {r.choice(p.neighbours)}, "
            f"{pron} became known for "
            f"{r.choice(['careful work on ' + r.choice(p.goods), 'a book about the river ' + p.river, 'a series of portraits of local ' + r.choice(p.trades), 'songs about the ' + p.festival, 'a history of ' + p.region])}. "
            f"A street near the market square is named in {poss} honour.")


def surroundings(p, r):
    v = pname(r)
    while v in p.used_villages or v == p.name:
        v = pname(r)
    p.used_villages.add(v)
    return (f"The village of {v} lies {r.randint(2, 25)} kilometres {r.choice(DIRS)} of {p.name}. "
            f"It has about {r.randint(2, 60) * 10} inhabitants, "
            f"{r.choice(['a small chapel', 'a village green', 'a ruined tower', 'an old inn', 'a ford across a stream'])} "
            f"and {r.choice(['a few farms', 'a sawmill', 'a quarry', 'a ferry landing', 'a dairy'])}. "
            f"{r.choice(['Most of its people work in', 'Many of its families have links to', 'It sends its children to school in'])} "
            f"{p.name}, and {r.choice(['a footpath', 'a country lane', 'a bus route', 'an old cart track'])} joins the two.")


def transport(p, r):
    return (f"{p.name} is connected by road to {p.neighbours[0]} and {p.neighbours[1]}. "
            f"{r.choice(['Buses', 'Trains', 'Ferries'])} run {r.choice(['every hour', 'twice a day', 'several times a day'])} "
            f"to {r.choice(p.neighbours)}, and a footpath follows the {p.river} for {r.randint(5, 60)} kilometres.")


# (title, generator, share of the target length; 0 = a single paragraph)
SECTIONS = [("Geography", geography, 0), ("Climate", climate, 0), ("History", history, 0.40),
            ("Economy", economy, 0), ("Landmarks", landmark, 0.15), ("Culture", culture, 0),
            ("Notable people", notable, 0.12), ("Surroundings", surroundings, 0.10), ("Transport", transport, 0)]


def words(s):
    return len(s.split())


def article_text(rng, target):
    p = Place(rng)
    p.history_events = plan_history(p, rng, max(4, int(target * 0.40 / 22)))
    out = [p.name, "", intro(p, rng)]
    n = words(out[-1])
    surround_title = False
    for title, fn, share in SECTIONS:
        if n >= target:
            break
        paras = []
        budget = int(target * share)
        while True:
            para = fn(p, rng)
            if para is None:
                break
            paras.append(para)
            n += words(para)
            if share == 0 or n >= target or sum(map(words, paras)) >= budget:
                break
        if paras:
            out += ["", title, ""] + ["\n".join(paras)]
            surround_title = surround_title or fn is surroundings
    # Still short: describe more villages nearby.
    more = []
    while n < target:
        para = surroundings(p, rng)
        more.append(para)
        n += words(para)
    if more:
        out += ["", "More villages nearby", "", "\n".join(more)]
    return "\n".join(out)


BOOK_LENGTHS = [
    [200, 240, 300, 380, 450, 520, 650, 800, 950, 1100, 1300, 1500, 1800, 2100, 2500, 3000, 3600, 4300, 5200, 6000],
    [210, 260, 320, 400, 480, 560, 700, 850, 1000, 1200, 1400, 1650, 1900, 2300, 2800, 3300, 3900, 4600, 5400, 5800],
]


# --------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------
def reset(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def main():
    for sub in ["images", "caption", "llava", "sharegpt", "books", "parquet", "wds"]:
        reset(os.path.join(HERE, sub))

    # ---- images ----
    items = build_images(random.Random(1001))
    for name, (obj, data) in items.items():
        with open(os.path.join(HERE, "images", name), "wb") as f:
            f.write(data)
    names = [n for n, *_ in IMAGE_PLAN]
    rel = lambda n: f"../images/{n}"  # noqa: E731  (JSONL files live one folder below recipes/data)

    # ---- caption pairs ----
    crng = random.Random(1002)
    recs = []
    for i, n in enumerate(names):
        obj, _ = items[n]
        recs.append({"image": rel(n), "caption": obj.caption(crng.randrange(3))})
    write_jsonl(os.path.join(HERE, "caption", "part-0.jsonl"), recs[:12])
    write_jsonl(os.path.join(HERE, "caption", "part-1.jsonl"), recs[12:])

    # ---- LLaVA ----
    lrng = random.Random(1003)
    llava = []
    # make sure the EXIF, sign, receipt, chart and form images are among the LLaVA samples
    single = ["exif6-08.jpg", "sign-12.png", "receipt-14.png", "chart-22.png", "form-23.jpg", "exif8-17.jpg",
              "shapes-00.png", "shapes-01.jpg", "shapes-02.png", "shapes-05.jpg", "shapes-06.png", "shapes-09.png",
              "shapes-15.jpg", "shapes-18.jpg"]
    for i, n in enumerate(single):
        obj, _ = items[n]
        qa = obj.qa_pool(lrng)[: lrng.randint(1, 3)]
        conv = []
        for j, (q, a) in enumerate(qa):
            conv.append({"from": "human", "value": ("<image>\n" + q) if j == 0 else q})
            conv.append({"from": "gpt", "value": a})
        llava.append({"id": f"llava-{i:03d}", "image": rel(n), "conversations": conv})
    # two images, two placeholders
    a, b = "shapes-03.jpg", "shapes-20.png"
    na, nb = len(items[a][0].shapes), len(items[b][0].shapes)
    if na == nb:
        ans = f"Both images have {NUM[na]} shapes."
    else:
        ans = (f"The {'first' if na > nb else 'second'} image has more shapes: {NUM[na]} in the first and "
               f"{NUM[nb]} in the second.")
    llava.append({"id": "llava-014", "image": [rel(a), rel(b)], "conversations": [
        {"from": "human", "value": "<image>\n<image>\nWhich of these two images contains more shapes?"},
        {"from": "gpt", "value": ans},
        {"from": "human", "value": "What colour is the background of each image?"},
        {"from": "gpt", "value": f"The first background is {items[a][0].bg} and the second is {items[b][0].bg}."}]})
    # text only
    llava.append({"id": "llava-015", "conversations": [
        {"from": "human", "value": "How many sides does a hexagon have?"},
        {"from": "gpt", "value": "A hexagon has six sides."},
        {"from": "human", "value": "And a triangle?"},
        {"from": "gpt", "value": "A triangle has three sides."}]})
    write_jsonl(os.path.join(HERE, "llava", "llava-mini.jsonl"), llava)

    # ---- ShareGPT / LLaMA-Factory messages ----
    srng = random.Random(1004)
    systems = ["You are a helpful assistant.", "You are a careful visual assistant. Answer briefly and exactly.",
               "Describe only what is visible in the image."]
    sg = []
    sg_names = ["shapes-04.png", "shapes-07.jpg", "shapes-10.png", "shapes-11.jpg", "sign-13.jpg", "shapes-16.png",
                "exif6-08.jpg", "sign-19.png", "shapes-21.jpg", "shapes-20.png", "receipt-14.png", "shapes-00.png"]
    for i, n in enumerate(sg_names):
        obj, _ = items[n]
        pool = obj.qa_pool(srng)
        colour_q = [qa for qa in pool if qa[0].startswith("What colour") and "background" not in qa[0]]
        colour_q += [qa for qa in pool if qa[0].startswith("What colour")]
        first = colour_q[0] if colour_q else pool[0]
        rest = [qa for qa in pool if qa != first]
        rounds = [first] + rest[: (1 if i % 4 == 3 else 0)]
        msgs = []
        if i % 3 == 0:
            msgs.append({"role": "system", "content": systems[(i // 3) % len(systems)]})
        for j, (q, a) in enumerate(rounds):
            msgs.append({"role": "user", "content": ("<image>" + q) if j == 0 else q})
            msgs.append({"role": "assistant", "content": a})
        sg.append({"messages": msgs, "images": [rel(n)]})
    write_jsonl(os.path.join(HERE, "sharegpt", "messages-mini.jsonl"), sg)

    # ---- books ----
    brng = random.Random(1005)
    for fi, lengths in enumerate(BOOK_LENGTHS):
        order = list(lengths)
        brng.shuffle(order)
        write_jsonl(os.path.join(HERE, "books", f"encyclopedia-{fi}.jsonl"),
                    [{"text": article_text(brng, L)} for L in order])

    # ---- parquet (HF datasets style) ----
    prng = random.Random(1006)
    rows = []
    plan = []
    for i in range(16):
        t = i % 4
        if t == 0:
            w, h = prng.choice([(300, 400), (360, 240), (240, 320)])
            obj, stem = (receipt_image(prng, w, h) if i % 8 == 0 else form_image(prng, w, h)), "doc"
        elif t == 1:
            obj, stem = Chart(prng, prng.choice([256, 320, 400]), prng.choice([192, 240])), "chart"
        elif t == 2:
            obj, stem = sign_image(prng, prng.choice([240, 320]), prng.choice([100, 140])), "sign"
        else:
            obj, stem = random_scene(prng, prng.choice([160, 224, 320]), prng.choice([160, 224, 240])), "shapes"
        fmt = "png" if i % 2 == 0 else "jpg"
        fname = f"{stem}-{i:02d}.{fmt}"
        data = encode(obj.render(), "png" if fmt == "png" else "jpeg")
        q, a = obj.qa_pool(prng)[0]
        plan.append((obj, data))
        rows.append({"image": {"bytes": data, "path": fname}, "question": q, "answer": a,
                     "messages": [{"role": "user", "content": "<image>" + q}, {"role": "assistant", "content": a}]})
    schema = pa.schema([
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ])
    hf = {"info": {"features": {
        "image": {"_type": "Image"},
        "question": {"dtype": "string", "_type": "Value"},
        "answer": {"dtype": "string", "_type": "Value"},
        "messages": [{"role": {"dtype": "string", "_type": "Value"}, "content": {"dtype": "string", "_type": "Value"}}],
    }}}
    schema = schema.with_metadata({"huggingface": json.dumps(hf)})
    table = pa.Table.from_pylist(rows, schema=schema)
    pq_path = os.path.join(HERE, "parquet", "docs-mini.parquet")
    pq.write_table(table, pq_path, compression="zstd", row_group_size=8, use_dictionary=["question"],
                   write_statistics=True)

    # ---- WebDataset shards ----
    wrng = random.Random(1007)
    wds_samples = []
    for i in range(20):
        w = wrng.choice([96, 128, 192, 256, 320, 400])
        h = wrng.choice([96, 128, 160, 240, 300])
        obj = random_scene(wrng, w, h, 1, 5) if i % 5 != 4 else sign_image(wrng, max(w, 200), max(h, 96))
        fmt = "jpg" if i % 3 != 2 else "png"
        data = encode(obj.render(), "png" if fmt == "png" else "jpeg")
        wds_samples.append((f"{i:06d}", fmt, obj, data, {"caption": obj.caption(wrng.randrange(3))}))
    for shard in range(2):
        path = os.path.join(HERE, "wds", f"shapes-{shard:06d}.tar")
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
            for key, fmt, obj, data, meta in wds_samples[shard * 10:(shard + 1) * 10]:
                for member, payload in [(f"{key}.{fmt}", data), (f"{key}.json", (dumps(meta) + "\n").encode())]:
                    ti = tarfile.TarInfo(member)
                    ti.size, ti.mtime, ti.mode = len(payload), 1700000000, 0o644
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    tf.addfile(ti, io.BytesIO(payload))

    # ---- re-read and check everything ----
    verify(items, plan, wds_samples)
    total = 0
    for root, _, files in os.walk(HERE):
        for f in files:
            if f in ("make_demo_data.py", "README.md"):
                continue
            total += os.path.getsize(os.path.join(root, f))
    print(f"total generated bytes: {total}")
    return 0


def verify(items, plan, wds_samples):
    # images as stored on disk, through the JSONL relative paths
    for sub, fname in [("caption", "part-0.jsonl"), ("caption", "part-1.jsonl"), ("llava", "llava-mini.jsonl"),
                       ("sharegpt", "messages-mini.jsonl")]:
        folder = os.path.join(HERE, sub)
        with open(os.path.join(folder, fname), encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        for r in recs:
            imgs = r.get("image", r.get("images", []))
            imgs = imgs if isinstance(imgs, list) else [imgs]
            for p in imgs:
                path = os.path.normpath(os.path.join(folder, p))
                with open(path, "rb") as fh:
                    data = fh.read()
                check_scene_bytes(data, items[os.path.basename(path)][0], path)
            if "conversations" in r:
                n_ph = sum(c["value"].count("<image>") for c in r["conversations"])
                assert n_ph == len(imgs), (r.get("id"), n_ph, len(imgs))
            if "messages" in r:
                n_ph = sum(m["content"].count("<image>") for m in r["messages"])
                assert n_ph == len(imgs), (n_ph, len(imgs))
        print(f"{sub}/{fname}: {len(recs)} records ok")
    # EXIF: stored size is transposed, orientation tag present
    for name, o in [("exif6-08.jpg", 6), ("exif8-17.jpg", 8)]:
        im = Image.open(os.path.join(HERE, "images", name))
        obj = items[name][0]
        assert im.getexif().get(0x0112) == o and im.size == (obj.h, obj.w), (name, im.size)
    # parquet
    pf = pq.ParquetFile(os.path.join(HERE, "parquet", "docs-mini.parquet"))
    assert pf.metadata.num_row_groups == 2 and pf.metadata.num_rows == 16
    t = pf.read()
    for row, (obj, data) in zip(t.to_pylist(), plan):
        assert row["image"]["bytes"] == data
        check_scene_bytes(data, obj, row["image"]["path"])
        assert row["messages"][0]["content"] == "<image>" + row["question"]
    print(f"parquet: {t.num_rows} rows, {pf.metadata.num_row_groups} row groups, schema {t.schema.types}")
    # webdataset
    for shard in range(2):
        with tarfile.open(os.path.join(HERE, "wds", f"shapes-{shard:06d}.tar")) as tf:
            members = tf.getnames()
            assert len(members) == 20 and members[0] == f"{shard * 10:06d}.{wds_samples[shard * 10][1]}"
            for key, fmt, obj, data, meta in wds_samples[shard * 10:(shard + 1) * 10]:
                assert tf.extractfile(f"{key}.{fmt}").read() == data
                assert json.loads(tf.extractfile(f"{key}.json").read()) == meta
                check_scene_bytes(data, obj, key)
    print("wds: 2 shards x 10 samples ok")
    # books
    for fi in range(2):
        with open(os.path.join(HERE, "books", f"encyclopedia-{fi}.jsonl"), encoding="utf-8") as f:
            lens = [len(json.loads(line)["text"].split()) for line in f]
        print(f"books/encyclopedia-{fi}.jsonl: {len(lens)} docs, words min {min(lens)} max {max(lens)} "
              f"total {sum(lens)}")


if __name__ == "__main__":
    sys.exit(main())
