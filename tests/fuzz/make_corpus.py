#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/seed_*): small real
files of every kind each reader takes, made from the bundled sample and from scratch.
Run from the repository root with Debian's python3 (numpy, Pillow): /usr/bin/python3 tests/fuzz/make_corpus.py
Inputs a fuzzer found are kept beside the seeds as regress_* files (never rewritten here)."""
import glob, io, json, os, struct, zlib
import numpy as np
from PIL import Image

C = "tests/fuzz/corpus"
SAMPLE = "tests/fixtures/dsb_sample"

def put(h, name, data):
    os.makedirs(f"{C}/{h}", exist_ok=True)
    with open(f"{C}/{h}/seed_{name}", "wb") as f:
        f.write(data)

def png(arr, mode=None, **kw):
    b = io.BytesIO()
    Image.fromarray(arr, mode).save(b, "PNG", **kw)
    return b.getvalue()

rng = np.random.default_rng(7)
grey = (rng.random((9, 13)) * 255).astype(np.uint8)
rgb = (rng.random((7, 5, 3)) * 255).astype(np.uint8)
rgba = (rng.random((6, 6, 4)) * 255).astype(np.uint8)
g16 = (rng.random((5, 8)) * 65535).astype(np.uint16)
lab16 = np.zeros((12, 10), np.uint16); lab16[1:4, 1:4] = 1; lab16[6:10, 5:9] = 2; lab16[0, 9] = 3
pal = Image.fromarray(grey).convert("P")
pb = io.BytesIO(); pal.save(pb, "PNG")
jb = io.BytesIO(); Image.fromarray(rgb).save(jb, "JPEG", quality=70)
bb = io.BytesIO(); Image.fromarray(rgb).save(bb, "BMP")
mask = sorted(glob.glob(f"{SAMPLE}/*/masks/*.png"), key=os.path.getsize)[0]
mask_bytes = open(mask, "rb").read()

for name, data in [("grey.png", png(grey)), ("rgb.png", png(rgb)), ("rgba.png", png(rgba)),
                   ("g16.png", png(g16.astype(np.uint16), "I;16")), ("palette.png", pb.getvalue()),
                   ("rgb.jpg", jb.getvalue()), ("rgb.bmp", bb.getvalue()), ("mask.png", mask_bytes)]:
    put("image", name, data)

# A compression bomb: a 1 x 1 grey PNG whose IDAT inflates to 16 MB (tests/test_data_hostile.c).
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
put("image", "zlib_bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)) +
    chunk(b"IDAT", zlib.compress(b"\0" * (16 << 20), 9)) + chunk(b"IEND", b""))

def dsb(img, second, odd):
    # The harness reads a labels.png when the image part's length is odd, a mask when even; a
    # byte after the PNG's IEND chunk (ignored by decoders) sets the parity.
    if len(img) % 2 != odd: img += b"\0"
    return struct.pack(">H", len(img)) + img + second
nuc = np.zeros((7, 5), np.uint8); nuc[2:5, 1:4] = 255
put("dsb", "mask", dsb(png(rgb), png(nuc), 0))
put("dsb", "labels", dsb(png(rgb), png(lab16[:7, :5], "I;16"), 1))

def st(tensors, meta):
    header, off, data = {}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw); data += raw
    if meta: header["__metadata__"] = meta
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data
f32 = lambda *s: ("F32", list(s), np.arange(int(np.prod(s)), dtype=np.float32).tobytes())
put("safetensors", "small", open("tests/fixtures/safetensors/small.safetensors", "rb").read())
put("safetensors", "mixed", st({"a": f32(2, 3), "b": ("I64", [1], struct.pack("<q", 5)), "c": ("U8", [3], b"xyz")},
                                {"config": "lr = 1e-3\n", "karyon.model": "x"}))
put("checkpoint", "weights", st({"conv1.weight": f32(4, 3, 7, 7), "bn1.weight": f32(4),
                                 "bn1.num_batches_tracked": ("I64", [], struct.pack("<q", 3))}, {"format": "pt"}))
put("checkpoint", "ckpt", st({"conv1.weight": f32(4, 3, 7, 7), "optim.m": f32(8), "optim.v": f32(8)},
                             {"optim.step": "3", "optim.kind": "adam", "karyon.model": "unet_resnet18 width 0.0625"}))

put("rle", "solution.csv", b"ImageId,EncodedPixels,Height,Width\na,1 3 10 2,8,6\na,20 4,8,6\nb,5 1,4,4\n")
put("rle", "submission.csv", b"ImageId,EncodedPixels\r\nx,1 2 5 1\r\nx,9 3\r\ny,\r\n")

folds = open(glob.glob(f"{SAMPLE}/*.csv")[0], "rb").read()
put("folds", "sample.csv", folds)
put("folds", "quoted.csv", b'\xef\xbb\xbfimg_id,fold,cluster,source\n"a,b",0,c,train\nz,1,polosa,extra\n')

put("config", "file", b"\x00" + b"# demo\nmodel = unet_resnet18\nwidth = 0.25\ncrop = 128\nbatch = 8\nlr = 1e-3\n"
    b"schedule = steps:1e-3@0,1e-4@10\noversample = b:4,c:3\nseed = 777\ndecoder_bn = true\n")
put("config", "argv", b"\x01--crop\n128\n--lr\n3e-4\n--loss\nsigmoid3\n--resume\n--fold\n-1")

put("gbt", "model.txt", b"karyon-gbt 1\nfeatures 2\nboosters 2\nbooster 0 trees 1 base_score 0.5\n"
    b"tree 0 nodes 1 leaves 2\nnode 1 0.25 -1 -2\nleaf -1 1\n"
    b"booster 1 trees 2 base_score 0\ntree 0 nodes 2 leaves 3\nnode 0 0.5 1 -1\nnode 1 -2 -2 -3\nleaf 0.1 0.2 0.3\n"
    b"tree 1 nodes 0 leaves 1\nleaf 7\nend\n")

put("labels", "lab16.png", png(lab16, "I;16"))
put("labels", "lab8.png", png(lab16.astype(np.uint8)))
print("corpora written under", C)
