"""bf16 against fp32 for null-text inversion: reconstruction error per support, same supports, one run.

The spec only allows bf16 as a default once this comparison holds on the target model; with random
weights (``sd15-random``) it checks the numerics of the path, not image quality.

    python benchmarks/precision.py --backbone sd15-random --supports 5
"""

from __future__ import annotations

import argparse
import json

import torch
from specialize import invert_supports, make_supports  # benchmarks/ is the script's folder

from tint_core.diffusion import NullTextConfig, load_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--supports", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    backbone = load_backbone(args.backbone, device=args.device, precision="fp32")
    supports = make_supports(backbone, 1, args.supports)[0]
    nti = NullTextConfig()
    figures = {"backbone": backbone.identity}
    for precision in ("fp32", "bf16"):
        backbone.to(dtype=precision)
        (result, latents), seconds = invert_supports(backbone, supports, nti, nti.num_steps)
        error = (result.reconstruction.to(latents.device) - latents).pow(2).mean(dim=(1, 2, 3)).cpu()
        relative = error / latents.var(dim=(1, 2, 3)).cpu()
        figures[precision] = {"seconds": seconds, "latent_mse": error.tolist(), "relative": relative.tolist(),
                              "mean_inner_steps": float(result.inner_steps.float().mean())}  # fmt: skip
        print(f"{precision}: {seconds:.1f} s, latent MSE per support {[f'{v:.3g}' for v in error.tolist()]}, "
              f"relative {[f'{v:.3g}' for v in relative.tolist()]}", flush=True)  # fmt: skip
    ratio = torch.tensor(figures["bf16"]["latent_mse"]) / torch.tensor(figures["fp32"]["latent_mse"]).clamp_min(1e-12)
    print(f"bf16 / fp32 reconstruction error per support: {[f'{v:.2f}' for v in ratio.tolist()]}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
