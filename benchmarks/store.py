"""Artifact store throughput: put/get of many small image parts and of one large tensor part, local and on S3.

Usage::

    python benchmarks/store.py                       # local folder in a temp dir + a moto S3 server on 127.0.0.1
    python benchmarks/store.py --s3-url s3://bucket/prefix   # a real S3 store instead of moto (AWS env settings)

Times include encoding (Parquet / safetensors), hashing, writing and, for gets, reading, verifying and decoding
(image sets to PNG bytes, not to pixels). PNG encoding of the images is done beforehand: it is the caller's work.
Local puts fsync every file. S3 gets are timed with an empty read cache ("cold") and again from it ("cached").
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tint_core.store import ArtifactStore, ImageSet, artifact_key


def image_parts(count: int, size: int) -> dict[str, ImageSet]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 3, size, size, generator=generator)
    return {f"image-{index:04d}": ImageSet.from_tensors(images[index:index + 1], {"label": [index % 5]})
            for index in range(count)}


def tensor_part(megabytes: int) -> dict[str, dict[str, torch.Tensor]]:
    return {"tensor": {"x": torch.randn(megabytes * 2**20 // 4, generator=torch.Generator().manual_seed(0))}}


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_case(store: ArtifactStore, name: str, parts: dict, repeats: int) -> dict[str, float]:
    """Median seconds of put, cold get and (remote stores) cached get over ``repeats`` fresh keys."""
    put, cold, cached = [], [], []
    for _ in range(repeats):
        key = artifact_key(step="benchmark", version=1, params={"case": name, "run": uuid.uuid4().hex})
        put.append(timed(lambda key=key: store.put(key, parts, step="benchmark")))
        if store.cache:
            store.cache.clear()
        cold.append(timed(lambda key=key: store.get(key).load()))
        if store.cache:
            cached.append(timed(lambda key=key: store.get(key).load()))
    result = {"put": statistics.median(put), "get": statistics.median(cold)}
    if cached:
        result["get (cached)"] = statistics.median(cached)
    return result


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in its own process (so that it does not share the benchmark's interpreter); yields a URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update(AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark",
                          AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint)
        import boto3

        boto3.client("s3").create_bucket(Bucket="tint-benchmark")
        yield "s3://tint-benchmark/store"
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="number of image parts")
    parser.add_argument("--image-size", type=int, default=64, help="side of each image in pixels")
    parser.add_argument("--tensor-mb", type=int, default=200, help="size of the tensor part in MB")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (the median is reported)")
    parser.add_argument("--s3-url", help="benchmark this S3 store instead of a local moto server")
    parser.add_argument("--skip-s3", action="store_true", help="local store only")
    args = parser.parse_args()

    images = image_parts(args.images, args.image_size)
    image_bytes = sum(len(png) for part in images.values() for png in part.png)
    tensor = tensor_part(args.tensor_mb)
    cases = [
        (f"{args.images} image parts ({args.image_size}x{args.image_size} PNG)", images, image_bytes),
        (f"1 tensor part ({args.tensor_mb} MB)", tensor, args.tensor_mb * 2**20),
    ]
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, torch {torch.__version__}")
    print(f"{'case':<34} {'store':<6} {'operation':<13} {'seconds':>8} {'MB/s':>8} {'parts/s':>9}")

    def report(store_name: str, store: ArtifactStore) -> None:
        for name, parts, payload in cases:
            for operation, seconds in run_case(store, name, parts, args.repeats).items():
                print(f"{name:<34} {store_name:<6} {operation:<13} {seconds:8.3f} "
                      f"{payload / 2**20 / seconds:8.1f} {len(parts) / seconds:9.1f}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        report("local", ArtifactStore(Path(folder, "store")))
        if args.skip_s3:
            return
        cache = Path(folder, "cache")
        if args.s3_url:
            report("s3", ArtifactStore(args.s3_url, cache_dir=cache))
        else:
            with moto_server() as url:
                report("moto", ArtifactStore(url, cache_dir=cache))


if __name__ == "__main__":
    main()
