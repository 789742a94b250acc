"""Writes the benchmark's real ~5 MB JPEG (needs Pillow): a noisy photo-like
image at high quality, deterministic for a given Pillow version."""
import random
import sys

from PIL import Image

width, height = 2600, 2000
rng = random.Random(5)
noise = bytes(rng.randrange(256) for _ in range(width * height * 3))
image = Image.frombytes("RGB", (width, height), noise)
image.save(sys.argv[1], quality=93)
