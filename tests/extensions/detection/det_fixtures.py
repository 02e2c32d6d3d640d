"""A tiny PASCAL VOC fixture in the real layout: its three archives, served on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import http.server
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from ghuda.data.fetch import Archive

# (year, list) -> {image id: [(class, xmin, ymin, xmax, ymax, difficult)]}; VOC 1-based pixels
OBJECTS = {
    ("VOC2007", "trainval"): {
        "000005": [("chair", 3, 4, 20, 25, 0), ("dog", 10, 2, 38, 28, 1)],
        "000007": [("car", 1, 1, 40, 30, 0)],
        "000009": [("person", 5, 5, 15, 29, 0), ("horse", 12, 8, 39, 27, 0)],
        "000012": [("tvmonitor", 20, 3, 35, 14, 0)],
    },
    ("VOC2007", "test"): {
        "000001": [("dog", 2, 3, 30, 27, 0), ("person", 20, 2, 39, 29, 1)],
        "000004": [("aeroplane", 4, 6, 36, 24, 0)],
    },
    ("VOC2012", "trainval"): {
        "2008_000002": [("bird", 6, 4, 26, 22, 0)],
        "2008_000003": [("sheep", 2, 2, 22, 28, 0), ("cow", 18, 10, 40, 30, 0)],
        "2008_000007": [("bottle", 30, 5, 37, 28, 0)],
    },
}
ARCHIVE_OF = {("VOC2007", "trainval"): "VOCtrainval_06-Nov-2007.tar",
              ("VOC2007", "test"): "VOCtest_06-Nov-2007.tar",
              ("VOC2012", "trainval"): "VOCtrainval_11-May-2012.tar"}
COUNTS = {f"{year}/{split}": len(ids) for (year, split), ids in OBJECTS.items()}
WIDTH, HEIGHT = 40, 30


def annotation_xml(image_id: str, objects: list[tuple]) -> str:
    """A VOC annotation file's text."""
    parts = [f"<annotation><filename>{image_id}.jpg</filename><size><width>{WIDTH}</width>"
             f"<height>{HEIGHT}</height><depth>3</depth></size>"]
    for name, x1, y1, x2, y2, difficult in objects:
        parts.append(f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0"
                     f"</truncated><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
                     f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def make_archives(top: Path) -> list[Archive]:
    """Write the three archives under `top`; returns their `Archive` records (md5, size)."""
    top.mkdir(parents=True, exist_ok=True)
    for (year, split), objects in OBJECTS.items():
        tree = top / f"tree_{year}_{split}"
        base = tree / "VOCdevkit" / year
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for k, (image_id, objs) in enumerate(objects.items()):
            Image.new("RGB", (WIDTH, HEIGHT), (20 * k, 90, 160)).save(
                base / "JPEGImages" / f"{image_id}.jpg", quality=90)
            (base / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(image_id, objs))
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(objects) + "\n")
        with tarfile.open(top / ARCHIVE_OF[(year, split)], "w") as tf:
            tf.add(tree / "VOCdevkit", arcname="VOCdevkit")
    archives = []
    for file in ARCHIVE_OF.values():
        data = (top / file).read_bytes()
        archives.append(Archive(file, [f"http://127.0.0.1:9/{file}"], len(data),
                                {"algorithm": "md5", "value": hashlib.md5(data).hexdigest(),
                                 "source": "test fixture"}))
    return archives


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
