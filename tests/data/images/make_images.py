"""Generates the small image fixtures of tests/image_io.rs and, beside each one, Pillow's
decoding of it (`<name>.pillow.png`, 8-bit RGB) that the Rust decoder is compared against.

Reference decoding = `ImageOps.exif_transpose(Image.open(p)).convert("RGB")`, i.e. Pillow's
`Image.open(p).convert("RGB")` with the EXIF orientation applied, which is what
`vggfeat::image_io::load_rgb` promises.

Run from anywhere with Pillow installed (made with Pillow 13.0.0, libjpeg-turbo 3):
    python3 -m venv target/pv && target/pv/bin/pip install pillow
    target/pv/bin/python tests/data/images/make_images.py
Every file is deterministic content (no randomness) and a few KB at most.
"""

import io
import os
import struct

from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 40, 24  # landscape, so that a 90-degree EXIF rotation changes the shape


def pattern(w=W, h=H):
    """Smooth colour gradients plus a solid block in each corner (JPEG-friendly, orientation
    visible): top-left red, top-right green, bottom-left blue, bottom-right white."""
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (40 + 160 * x // w, 60 + 140 * y // h, 200 - 150 * (x + y) // (w + h))
    b = 8
    for (x0, y0, c) in [(0, 0, (220, 30, 30)), (w - b, 0, (30, 200, 40)),
                        (0, h - b, (30, 40, 220)), (w - b, h - b, (250, 250, 250))]:
        for y in range(y0, y0 + b):
            for x in range(x0, x0 + b):
                px[x, y] = c
    return im


def save(im, name, **kw):
    path = os.path.join(HERE, name)
    im.save(path, **kw)
    return path


def reference(path):
    ref = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    ref.save(path + ".pillow.png")


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def main():
    rgb = pattern()
    out = []
    out.append(save(rgb, "rgb.jpg", quality=90))
    out.append(save(rgb, "rgb444.jpg", quality=90, subsampling=0))
    out.append(save(rgb, "progressive.jpg", quality=90, progressive=True))
    out.append(save(rgb.convert("L"), "grey.jpg", quality=90))
    cmyk = rgb.convert("CMYK")
    # Pillow writes an Adobe APP14 marker (transform 0 = CMYK) with inverted (Photoshop) values.
    out.append(save(cmyk, "cmyk.jpg", quality=95))
    # A YCCK JPEG: the same file with the APP14 transform flag set to 2, so a decoder must apply
    # the YCbCr->RGB transform to the first three channels before the CMYK->RGB step.
    data = open(os.path.join(HERE, "cmyk.jpg"), "rb").read()
    i = data.find(b"Adobe")
    assert i > 0 and data[i + 11] == 0, "expected an Adobe APP14 marker with transform 0"
    data = data[: i + 11] + b"\x02" + data[i + 12:]
    with open(os.path.join(HERE, "ycck.jpg"), "wb") as f:
        f.write(data)
    out.append(os.path.join(HERE, "ycck.jpg"))
    for o in (3, 6, 8):
        out.append(save(rgb, f"exif{o}.jpg", quality=90, exif=exif(o)))
    out.append(save(rgb, "exif6.png", exif=exif(6)))
    # 16-bit: values spread over the full range so that the 16->8 rule matters.
    g16 = Image.new("I;16", (W, H))
    g16.putdata([(x * 1621 + y * 977) % 65536 for y in range(H) for x in range(W)])
    out.append(save(g16, "grey16.png"))
    out.append(save(rgb.convert("RGBA"), "rgba.png"))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((W, H)))
    out.append(save(rgba, "rgba_alpha.png"))
    la = rgb.convert("LA")
    la.putalpha(Image.linear_gradient("L").resize((W, H)))
    out.append(save(la, "la.png"))
    pal = rgb.quantize(16)
    out.append(save(pal, "palette.png"))
    out.append(save(pal, "palette_trns.png", transparency=3))
    out.append(save(pal, "trns.gif", transparency=3))
    frames = [Image.new("RGB", (W, H), c) for c in [(200, 20, 20), (20, 20, 200), (20, 200, 20)]]
    frames[0] = rgb.quantize(32).convert("RGB")
    out.append(save(frames[0], "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0))
    out.append(save(frames[0], "anim.png", save_all=True, append_images=frames[1:], duration=100))
    out.append(save(frames[0], "anim.webp", save_all=True, append_images=frames[1:], duration=100,
                    lossless=True))
    out.append(save(rgb, "lossless.webp", lossless=True))
    out.append(save(rgb, "rgb.bmp"))
    out.append(save(rgb, "rgb.tif"))
    for p in out:
        reference(p)
    # 16-bit RGB PNG: Pillow cannot write it, so write it by hand (PNG colour type 2, depth 16).
    write_rgb16_png(os.path.join(HERE, "rgb16.png"))
    reference(os.path.join(HERE, "rgb16.png"))


def write_rgb16_png(path):
    import zlib
    raw = b""
    for y in range(H):
        raw += b"\x00"
        for x in range(W):
            r, g, b = (x * 1621 + y * 977) % 65536, (x * 257 * 6) % 65536, (y * 2731) % 65536
            raw += struct.pack(">HHH", r, g, b)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", W, H, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main()
