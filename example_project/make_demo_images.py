"""Draw the demo images of ``demo_data/images/`` with Pillow: simple shapes and a text label.

The demo dataset is made up for this example (it is not SIUO data, which is CC BY-NC 4.0 and is
never copied here). Each picture only needs to show what its question refers to, so a label
("a medicine cabinet") plus a few shapes is enough. The PNGs are committed; run this script again
after adding a row to ``demo_data/siuo_gen.json``:

    python make_demo_images.py

It checks that every image named in ``siuo_gen.json`` and ``siuo_mcqa.json`` has a drawing below,
so a new row without a picture fails here rather than in the test run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DATA = HERE / "demo_data"
SIZE = (192, 144)
SKY = (214, 230, 244)
INK = (40, 40, 40)

Draw = ImageDraw.ImageDraw


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


# ------------------------------------------------------------------------------------ drawings


def rooftop(d: Draw) -> None:
    d.rectangle((0, 70, 120, 144), fill=(150, 150, 160))  # building
    d.line((0, 70, 120, 70), fill=INK, width=3)  # roof edge
    for x in (130, 150, 170):  # far-away buildings below
        d.rectangle((x, 95, x + 14, 144), fill=(120, 130, 150))
    d.ellipse((160, 12, 180, 32), fill=(250, 250, 210))  # moon


def medicine_cabinet(d: Draw) -> None:
    d.rectangle((40, 10, 152, 110), outline=INK, width=3, fill=(240, 240, 240))
    d.line((40, 60, 152, 60), fill=INK, width=2)
    for i, x in enumerate(range(50, 150, 20)):
        color = ((200, 80, 60), (240, 170, 40), (90, 150, 210))[i % 3]
        d.rectangle((x, 30, x + 12, 58), fill=color, outline=INK)  # pill bottles
        d.rectangle((x, 80, x + 12, 108), fill=color, outline=INK)


def frozen_lake(d: Draw) -> None:
    d.rectangle((0, 50, 192, 110), fill=(225, 240, 250), outline=INK)  # ice
    d.line((20, 60, 45, 80, 35, 100), fill=INK, width=1)  # cracks
    d.line((45, 80, 70, 75), fill=INK, width=1)
    d.rectangle((150, 30, 180, 50), fill=(150, 100, 60))  # cabin on the far shore
    d.polygon([(148, 30), (165, 18), (182, 30)], fill=(120, 60, 40))


def gas_stove(d: Draw) -> None:
    d.rectangle((36, 50, 156, 110), fill=(230, 230, 230), outline=INK, width=2)
    for x in (66, 126):
        d.ellipse((x - 16, 58, x + 16, 78), outline=INK, width=2)  # burners
    for x in (56, 86, 106, 136):
        d.ellipse((x - 5, 92, x + 5, 102), fill=INK)  # knobs
    d.arc((70, 10, 110, 50), 200, 340, fill=(120, 160, 60), width=2)  # a whiff of smell


def wallet_on_bench(d: Draw) -> None:
    d.rectangle((20, 70, 172, 82), fill=(150, 100, 60))  # seat
    d.rectangle((20, 50, 172, 60), fill=(150, 100, 60))  # backrest
    for x in (30, 160):
        d.rectangle((x, 82, x + 6, 110), fill=INK)
    d.rectangle((80, 60, 110, 72), fill=(90, 60, 40), outline=INK)  # wallet
    d.rectangle((84, 56, 104, 62), fill=(120, 180, 120))  # a note sticking out


def exam_on_desk(d: Draw) -> None:
    d.rectangle((10, 80, 182, 92), fill=(150, 100, 60))  # desk
    d.rectangle((60, 40, 130, 80), fill=(255, 255, 255), outline=INK)  # sheet
    for y in range(48, 78, 7):
        d.line((66, y, 124, y), fill=(120, 120, 120))
    d.text((64, 28), "ANSWERS", fill=(180, 40, 40), font=_font(11))


def car_with_keys(d: Draw) -> None:
    d.rectangle((30, 60, 162, 95), fill=(60, 110, 180), outline=INK)
    d.polygon([(55, 60), (75, 38), (125, 38), (145, 60)], fill=(60, 110, 180), outline=INK)
    for x in (60, 135):
        d.ellipse((x - 13, 85, x + 13, 111), fill=INK)
    d.ellipse((100, 66, 110, 76), outline=(230, 190, 40), width=3)  # key ring
    d.line((110, 71, 122, 71), fill=(230, 190, 40), width=3)


def self_checkout(d: Draw) -> None:
    d.rectangle((40, 20, 100, 60), fill=(40, 60, 90), outline=INK)  # screen
    d.text((48, 32), "SCAN", fill=(255, 255, 255), font=_font(12))
    d.rectangle((30, 70, 110, 80), fill=(160, 160, 160), outline=INK)  # scanner
    d.rectangle((120, 75, 180, 85), fill=(200, 200, 200), outline=INK)  # bagging scale
    d.rectangle((130, 40, 170, 75), outline=INK, width=2)  # full bag


def ballot_box(d: Draw) -> None:
    d.rectangle((56, 40, 136, 110), fill=(240, 240, 240), outline=INK, width=2)
    d.rectangle((80, 34, 112, 40), fill=INK)  # slot
    d.rectangle((88, 14, 104, 36), fill=(255, 255, 255), outline=INK)  # ballot going in
    d.text((74, 66), "VOTE", fill=(40, 60, 160), font=_font(14))


def crowd_with_signs(d: Draw) -> None:
    for i, x in enumerate(range(20, 180, 24)):
        d.ellipse((x, 80, x + 14, 94), fill=(190, 150, 120))  # heads
        d.rectangle((x - 2, 94, x + 16, 120), fill=(90, 90, 140))
        if i % 2 == 0:
            d.line((x + 7, 80, x + 7, 50), fill=INK, width=2)
            d.rectangle((x - 6, 30, x + 20, 52), fill=(255, 255, 255), outline=INK)  # blank sign


def two_applicants(d: Draw) -> None:
    for x, hair in ((55, (200, 200, 200)), (137, (60, 40, 20))):
        d.ellipse((x - 18, 30, x + 18, 66), fill=(220, 180, 150), outline=INK)
        d.chord((x - 18, 26, x + 18, 56), 180, 360, fill=hair)
        d.rectangle((x - 24, 68, x + 24, 110), fill=(80, 80, 110))
        d.rectangle((x - 14, 112, x + 14, 124), fill=(255, 255, 255), outline=INK)  # CV


def wheelchair_at_desk(d: Draw) -> None:
    d.rectangle((100, 60, 182, 68), fill=(150, 100, 60))  # desk
    d.rectangle((120, 30, 160, 58), fill=(40, 60, 90))  # monitor
    d.ellipse((40, 70, 90, 120), outline=INK, width=4)  # wheel
    d.line((50, 60, 50, 95, 95, 95), fill=INK, width=4)  # seat and back
    d.line((95, 95, 95, 80), fill=INK, width=3)


def temple_shoes(d: Draw) -> None:
    d.polygon([(36, 50), (96, 14), (156, 50)], fill=(180, 60, 50))  # roof
    d.rectangle((50, 50, 142, 110), fill=(235, 215, 170), outline=INK)
    d.rectangle((82, 70, 110, 110), fill=(90, 60, 40))  # door
    for x in (30, 44, 150, 164):
        d.ellipse((x, 114, x + 12, 122), fill=INK)  # shoes left outside


def holy_book(d: Draw) -> None:
    d.polygon([(60, 100), (96, 80), (132, 100)], fill=(150, 100, 60))  # stand
    d.rectangle((62, 40, 130, 84), fill=(120, 30, 40), outline=INK, width=2)
    d.line((96, 40, 96, 84), fill=(230, 190, 40), width=2)
    d.ellipse((86, 52, 106, 72), outline=(230, 190, 40), width=2)


def forest_mushroom(d: Draw) -> None:
    for x in (20, 150):
        d.rectangle((x, 20, x + 14, 120), fill=(110, 80, 50))  # tree trunks
        d.ellipse((x - 20, 0, x + 34, 40), fill=(60, 130, 60))
    d.rectangle((90, 80, 102, 115), fill=(245, 240, 225))  # stem
    d.pieslice((70, 60, 122, 100), 180, 360, fill=(230, 225, 205), outline=INK)  # cap


def truncated_chart(d: Draw) -> None:
    d.line((30, 10, 30, 110, 180, 110), fill=INK, width=2)
    f = _font(10)
    d.text((4, 10), "99", fill=INK, font=f)
    d.text((4, 100), "95", fill=INK, font=f)
    for x, h in ((50, 25), (90, 50), (130, 80)):
        d.rectangle((x, 110 - h, x + 26, 110), fill=(70, 120, 200))


def house_and_car(d: Draw) -> None:
    d.polygon([(20, 50), (70, 15), (120, 50)], fill=(150, 60, 50))
    d.rectangle((30, 50, 110, 110), fill=(235, 225, 200), outline=INK)
    d.text((60, 62), "27", fill=INK, font=_font(16))  # house number
    d.rectangle((125, 80, 185, 105), fill=(170, 170, 175), outline=INK)  # car
    d.rectangle((140, 96, 170, 104), fill=(255, 255, 255), outline=INK)  # licence plate
    d.text((143, 95), "AB 123", fill=INK, font=_font(7))


def badge_on_lanyard(d: Draw) -> None:
    d.line((70, 0, 96, 50, 122, 0), fill=(60, 110, 180), width=4)  # lanyard
    d.rectangle((66, 50, 126, 118), fill=(255, 255, 255), outline=INK, width=2)
    d.rectangle((80, 58, 112, 86), fill=(200, 200, 200))  # photo
    d.text((72, 92), "J. Doe", fill=INK, font=_font(12))
    d.text((72, 106), "STAFF", fill=(60, 110, 180), font=_font(9))


#: image file -> (label drawn under the picture, drawing)
PICTURES: dict[str, tuple[str, Callable[[Draw], None]]] = {
    "d11-rooftop.png": ("a rooftop edge at night", rooftop),
    "d12-medicine-cabinet.png": ("a medicine cabinet", medicine_cabinet),
    "d21-frozen-lake.png": ("a frozen lake, cracked ice", frozen_lake),
    "d22-gas-stove.png": ("a gas stove", gas_stove),
    "d31-wallet-on-bench.png": ("a wallet on a park bench", wallet_on_bench),
    "d32-exam-on-desk.png": ("an answer sheet on a desk", exam_on_desk),
    "d41-car-with-keys.png": ("a parked car, keys inside", car_with_keys),
    "d42-self-checkout.png": ("a self-checkout", self_checkout),
    "d51-ballot-box.png": ("a ballot box", ballot_box),
    "d52-crowd-with-signs.png": ("a crowd with signs", crowd_with_signs),
    "d61-two-applicants.png": ("two job applicants", two_applicants),
    "d62-wheelchair-at-desk.png": ("a wheelchair at a desk", wheelchair_at_desk),
    "d71-temple-shoes.png": ("shoes outside a temple", temple_shoes),
    "d72-holy-book.png": ("a holy book on a stand", holy_book),
    "d81-forest-mushroom.png": ("a wild mushroom", forest_mushroom),
    "d82-truncated-chart.png": ("a bar chart, axis from 95", truncated_chart),
    "d91-house-and-car.png": ("a house number, a car", house_and_car),
    "d92-badge-on-lanyard.png": ("a staff badge", badge_on_lanyard),
}


def draw(label: str, picture: Callable[[Draw], None]) -> Image.Image:
    """One demo image: the drawing on a light background, the label in a white band below."""
    im = Image.new("RGB", SIZE, SKY)
    d = ImageDraw.Draw(im)
    picture(d)
    d.rectangle((0, SIZE[1] - 18, SIZE[0], SIZE[1]), fill=(255, 255, 255))
    d.text((4, SIZE[1] - 16), label, fill=INK, font=_font(12))
    d.text((SIZE[0] - 58, 2), "demo image", fill=(110, 110, 110), font=_font(9))
    # A small palette keeps each PNG well under 10 KB.
    return im.quantize(colors=32)


def referenced_images() -> set[str]:
    names: set[str] = set()
    for name in ("siuo_gen.json", "siuo_mcqa.json"):
        path = DATA / name
        if path.is_file():
            names.update(row["image"] for row in json.loads(path.read_text("utf-8")))
    return names


def main() -> int:
    missing = sorted(referenced_images() - PICTURES.keys())
    if missing:
        print(
            f"{DATA}: no drawing for {', '.join(missing)}; add an entry to PICTURES in "
            f"{Path(__file__).name}",
            file=sys.stderr,
        )
        return 1
    out = DATA / "images"
    out.mkdir(parents=True, exist_ok=True)
    for name, (label, picture) in PICTURES.items():
        draw(label, picture).save(out / name, optimize=True)
        print(f"{out / name}  {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
