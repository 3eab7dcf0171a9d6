"""The deterministic picture the image-to-image oracles start from, and a PNG writer (PIL is not installed)."""
import struct
import zlib

import numpy as np


def init_image(h, w):
    """A deterministic RGB test picture (gradients and a disc), uint8 H×W×3."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    disc = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(h, w) * 0.25) ** 2
    b = np.where(disc, 230.0, 40.0 + 100 * np.sin(x / 5.0) ** 2)
    return np.stack([r, g, b], axis=-1).round().clip(0, 255).astype(np.uint8)


def write_png(path, rgb):
    """Minimal PNG (8-bit RGB, no filter): PIL is not installed."""
    h, w, _ = rgb.shape
    raw = b''.join(b'\x00' + rgb[i].tobytes() for i in range(h))

    def chunk(kind, data):
        c = struct.pack('>I', len(data)) + kind + data
        return c + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))
