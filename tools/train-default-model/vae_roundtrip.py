"""Encodes and decodes every evaluation scene with an exported model's VAE (posterior mean, no diffusion), so the
evaluator can score the reconstructions: the ceiling the VAE puts on what any UNet can reach.

    python3 tools/train-default-model/vae_roundtrip.py MODEL_DIR OUT.rgb [--decoder CKPT.pt]
    node --import tsx tools/train-default-model/evaluate.ts --images OUT.rgb

OUT.rgb holds the 128x128 RGB images of eval-prompts.json's items in order, uint8, no header. --decoder replaces the
VAE's weights with a decoder fine-tuning checkpoint (train.py --decoder-only writes runs/.../vae_decoder.pt).
--vae-pt scores a VAE checkpoint of a run (runs/.../vae.pt, train.py's state dict) before anything is exported:
MODEL_DIR is then ignored and the config is train.py's, with --latent-channels.
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export as ex  # noqa: E402
import shapes  # noqa: E402
from models import AutoencoderKL  # noqa: E402


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--decoder", default=None)
    ap.add_argument("--vae-pt", default=None)
    ap.add_argument("--latent-channels", type=int, default=12, help="with --vae-pt: as train.py's --latent-channels")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.vae_pt:
        import train
        vae = AutoencoderKL(train.configs(1, 0, 0, latent_channels=args.latent_channels)[2])
        vae.load_state_dict(torch.load(args.vae_pt))
    else:
        with open(os.path.join(args.model_dir, "vae", "config.json")) as f:
            vae = AutoencoderKL(json.load(f))
        vae.load_state_dict(ex.load_safetensors(os.path.join(args.model_dir, "vae", "diffusion_pytorch_model.safetensors")))
    if args.decoder:
        vae.load_state_dict(torch.load(args.decoder)["vae"])
    vae.eval()
    with open(os.path.join(HERE, "eval-prompts.json")) as f:
        items = json.load(f)["items"]
    # Each scene drawn by the training renderer, its jitter seeded by the item's seed.
    imgs = np.stack([shapes.render(it["scene"], random.Random(it["seed"])) for it in items])
    out = []
    for i in range(0, len(imgs), 50):
        x = torch.from_numpy(imgs[i:i + 50]).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = vae.decode(vae.encode(x)[0])
        out.append(((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    rec = np.concatenate(out)
    rec.tofile(args.out)
    print(f"wrote {len(rec)} reconstructions to {args.out}; pixel RMSE {np.sqrt(((rec.astype(float) - imgs) ** 2).mean()):.2f}")


if __name__ == "__main__":
    main()
