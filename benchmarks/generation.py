"""TINT generation throughput of execution variants on the same inputs, in one run:
eager, channels-last memory format, and torch.compile of the UNet (GPU); each variant adds to the previous.

    python benchmarks/generation.py --backbone sd15-random --precision bf16 --images 64 --batch-size 32
"""

from __future__ import annotations

import argparse
import json

import torch
from specialize import time_generation  # benchmarks/ is the script's folder

from tint_core.diffusion import NullTextConfig, load_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--variants", default="eager,channels_last,compile")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    backbone = load_backbone(args.backbone, device=args.device, precision=args.precision)
    nti = NullTextConfig()
    figures: dict[str, float] = {}
    for variant in args.variants.split(","):
        if variant == "channels_last":
            backbone.unet.to(memory_format=torch.channels_last)
            backbone.vae.to(memory_format=torch.channels_last)
        elif variant == "compile":
            backbone.compile_unet()
        seconds = time_generation(backbone, args.images, args.batch_size, nti)
        figures[variant] = 1 / seconds
        print(f"{variant:<16} {1 / seconds:8.2f} images/s  ({figures[variant] / figures[next(iter(figures))]:.2f}× "
              f"the first variant)", flush=True)  # fmt: skip
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
