"""Writes the diffusers SD1.5-layout folder (fp16 safetensors, configs, tokenizer, scheduler) and manifest.json."""
import hashlib
import json
import os
import struct

import numpy as np
import torch

DTYPES = {torch.float16: ("F16", np.float16), torch.float32: ("F32", np.float32)}


def save_safetensors(path, tensors, dtype=torch.float16, metadata=None):
    """tensors: name -> torch tensor. Format: u64 LE header length, JSON header, raw little-endian data."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        tag, npd = DTYPES[dtype]
        b = t.numpy().astype(npd).astype("<" + np.dtype(npd).str[1:]).tobytes()
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        npd = {"F16": np.float16, "F32": np.float32}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=npd).astype(np.float32).reshape(v["shape"]).copy())
    return out


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fp16_roundtrip(module):
    """Rounds a module's parameters to fp16 in place (what the exported model holds)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def export(out, tok, text_cfg, unet_cfg, vae_cfg, sched_cfg, text_encoder, unet, vae, manifest_extra, call_defaults=None):
    """call_defaults: the pipeline call's defaults this model is evaluated at ({"num_inference_steps", "guidance_scale"}),
    written to model_index.json as `_easel_defaults` (diffusers ignores keys that start with "_"; Easel reads it)."""
    os.makedirs(out, exist_ok=True)
    extra = {"_easel_defaults": call_defaults} if call_defaults else {}
    write_json(os.path.join(out, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.32.0",
        **extra,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", sched_cfg["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    tok.save(os.path.join(out, "tokenizer"))
    write_json(os.path.join(out, "text_encoder", "config.json"), text_cfg)
    save_safetensors(os.path.join(out, "text_encoder", "model.safetensors"), text_encoder.state_dict())
    write_json(os.path.join(out, "unet", "config.json"), unet_cfg)
    save_safetensors(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"), unet.state_dict())
    write_json(os.path.join(out, "vae", "config.json"), vae_cfg)
    save_safetensors(os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"), vae.state_dict())
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), sched_cfg)
    write_manifest(out, manifest_extra)


def write_manifest(out, extra):
    files = {}
    for root, _, names in os.walk(out):
        for n in sorted(names):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, out)
            if rel == "manifest.json" or n.endswith(".tmp"):
                continue
            files[rel] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    write_json(os.path.join(out, "manifest.json"), dict(extra, files=dict(sorted(files.items()))))
