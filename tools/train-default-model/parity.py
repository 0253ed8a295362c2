"""Writes parity inputs and torch outputs for an exported model folder, then parity.ts compares Easel's.

    python3 tools/train-default-model/parity.py MODEL_DIR CASE_DIR && \
      node --import tsx tools/train-default-model/parity.ts MODEL_DIR CASE_DIR
"""
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
import tokenizer as tk  # noqa: E402
from models import AutoencoderKL, CLIPTextModel, UNet2DConditionModel  # noqa: E402


def write_ref(base, t):
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else t
    dtype = {np.dtype("float32"): "float32", np.dtype("int64"): "int64"}[a.dtype]
    a.astype("<" + a.dtype.str[1:]).tofile(base + ".bin")
    with open(base + ".json", "w") as f:
        json.dump({"shape": list(a.shape), "dtype": dtype}, f)


def load(model_dir):
    cfg = lambda c: json.load(open(os.path.join(model_dir, c, "config.json")))
    te = CLIPTextModel(cfg("text_encoder"))
    te.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "text_encoder", "model.safetensors")))
    un = UNet2DConditionModel(cfg("unet"))
    un.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "unet", "diffusion_pytorch_model.safetensors")))
    va = AutoencoderKL(cfg("vae"))
    va.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "vae", "diffusion_pytorch_model.safetensors")))
    return tk.load(os.path.join(model_dir, "tokenizer")), te.eval(), un.eval(), va.eval()


@torch.no_grad()
def main(model_dir, case_dir):
    os.makedirs(case_dir, exist_ok=True)
    torch.manual_seed(0)
    tok, te, un, va = load(model_dir)
    rng = random.Random(7)
    prompts = [shapes.sample_scene_and_prompt(rng)[0] for _ in range(600)]
    prompts += ["", "a red circle", "A big yellow star at the bottom on black", "red circle, blue background",
                "a small green triangle in the top left corner", "a red circle and a blue square", "Grey  SQUARE!!"]
    with open(os.path.join(case_dir, "prompts.json"), "w") as f:
        json.dump([{"prompt": p, "ids": tok.encode(p)} for p in prompts], f)
    ids = torch.tensor([tok.encode(p) for p in prompts[-7:-3]])
    hidden = te(ids)
    write_ref(os.path.join(case_dir, "input_ids"), ids.numpy().astype(np.int64))
    write_ref(os.path.join(case_dir, "hidden"), hidden)
    c = va.post_quant_conv.in_channels  # latent channels (4 or 8)
    sample = torch.randn(4, c, 16, 16)
    timestep = torch.tensor([999.0, 500.0, 20.0, 1.0])
    write_ref(os.path.join(case_dir, "sample"), sample)
    write_ref(os.path.join(case_dir, "timestep"), timestep)
    write_ref(os.path.join(case_dir, "unet_out"), un(sample, timestep, hidden))
    latent = torch.randn(2, c, 16, 16)
    write_ref(os.path.join(case_dir, "latent"), latent)
    write_ref(os.path.join(case_dir, "decoded"), va.decode(latent))
    r = random.Random(3)
    img = np.stack([shapes.render(shapes.sample_scene(r), r) for _ in range(2)])
    image = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1
    write_ref(os.path.join(case_dir, "image"), image.contiguous())
    write_ref(os.path.join(case_dir, "moments"), va.quant_conv(va.encoder(image)))
    print("wrote", case_dir)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
