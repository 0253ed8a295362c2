"""Trains easel-shapes end to end and exports it in the diffusers SD1.5 layout.

    python3 tools/train-default-model/train.py --out models/easel-shapes

Phases (each cached under --runs, so a re-run resumes): render the dataset, train the VAE, encode the dataset's
latents, train the text encoder and UNet jointly (v-prediction, CFG dropout, EMA), export. Exports land in --out
every --export-every minutes while training and once at the end; manifest.json records the recipe and sha256s.
"""
import argparse
import copy
import datetime
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export as ex  # noqa: E402
import shapes  # noqa: E402
import tokenizer as tk  # noqa: E402
from models import AutoencoderKL, CLIPTextModel, UNet2DConditionModel  # noqa: E402

MAX_LEN = 32
TEXT_DIM = 64


def configs(vocab_size, bos, eos, scaling_factor=1.0, latent_channels=8):
    text = {
        "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": bos, "dropout": 0.0,
        "eos_token_id": eos, "hidden_act": "gelu", "hidden_size": TEXT_DIM, "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": TEXT_DIM * 4, "layer_norm_eps": 1e-5,
        "max_position_embeddings": MAX_LEN, "model_type": "clip_text_model", "num_attention_heads": 4,
        "num_hidden_layers": 2, "pad_token_id": eos, "projection_dim": TEXT_DIM, "torch_dtype": "float16",
        "transformers_version": "4.44.0", "vocab_size": vocab_size,
    }
    unet = {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.32.0", "act_fn": "silu",
        "attention_head_dim": [4, 4, 4], "block_out_channels": [32, 64, 64], "center_input_sample": False,
        "cross_attention_dim": TEXT_DIM,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"], "downsample_padding": 1,
        "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": latent_channels, "layers_per_block": 1,
        "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-5,
        "norm_num_groups": 8, "out_channels": latent_channels, "sample_size": 16,
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], "use_linear_projection": False,
    }
    vae = {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.32.0", "act_fn": "silu",
        "block_out_channels": [16, 32, 64, 64], "down_block_types": ["DownEncoderBlock2D"] * 4,
        "force_upcast": False, "in_channels": 3, "latent_channels": latent_channels, "latents_mean": None, "latents_std": None,
        "layers_per_block": 1, "mid_block_add_attention": False, "norm_num_groups": 8, "out_channels": 3,
        "sample_size": 128, "scaling_factor": scaling_factor, "shift_factor": None,
        "up_block_types": ["UpDecoderBlock2D"] * 4, "use_post_quant_conv": True, "use_quant_conv": True,
    }
    sched = {
        "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.32.0",
        "algorithm_type": "dpmsolver++", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
        "dynamic_thresholding_ratio": 0.995, "euler_at_final": False, "final_sigmas_type": "zero",
        "lower_order_final": True, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
        "sample_max_value": 1.0, "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0,
        "thresholding": False, "timestep_spacing": "linspace", "trained_betas": None,
        "use_karras_sigmas": False, "variance_type": None,
    }
    return text, unet, vae, sched


def log(msg):
    print(f"[{datetime.datetime.utcnow().strftime('%H:%M:%S')}] {msg}", flush=True)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


def to_tensor(imgs):
    """uint8 [N, H, W, 3] -> float [-1, 1] [N, 3, H, W]."""
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------------------------


def render_dataset(path, n, seed):
    if os.path.exists(path):
        d = np.load(path, allow_pickle=False)
        scenes = json.loads(str(d["scenes"]))
        if len(scenes) == n:
            return d["images"], scenes
    rng = random.Random(seed)
    imgs = np.empty((n, shapes.W, shapes.W, 3), dtype=np.uint8)
    scenes = []
    t0 = time.time()
    for i in range(n):
        s = shapes.sample_scene(rng)
        imgs[i] = shapes.render(s, rng)
        scenes.append(s)
        if i % 5000 == 0:
            log(f"render {i}/{n} ({time.time() - t0:.0f}s)")
    np.savez(path, images=imgs, scenes=np.array(json.dumps(scenes)))
    return imgs, scenes


def train_vae(vae, imgs, steps, batch, path, seed, fg_weight=5.0, edge_weight=0.0, crop=64, lr_max=1e-3):
    """Crops of crop x crop pixels (128: whole images); pixels that differ from the background (the top-left pixel)
    weigh fg_weight: a small object's shape and colour are a few percent of the pixels but all of what the prompt
    asks for. Pixels within two of a shape's edge add edge_weight: a small star's points are mostly edge."""
    if os.path.exists(path):
        vae.load_state_dict(torch.load(path))
        log("vae: loaded " + path)
        return
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr_max, weight_decay=0.0)
    t0 = time.time()
    avg = None
    for step in range(steps):
        lr = lr_max * min(1.0, (step + 1) / 100) * (0.5 * (1 + math.cos(math.pi * step / steps)) * 0.95 + 0.05)
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, len(imgs), (batch,), generator=g)
        x = to_tensor(imgs[idx.numpy()])
        bgc = x[:, :, :1, :1]
        # crops at multiples of 8 (64x64 is 4x cheaper than full images; the VAE is convolutional and generalises)
        n_off = (shapes.W - crop) // 8 + 1
        ox, oy = [int(i) * 8 for i in torch.randint(0, n_off, (2,), generator=g)]
        x = x[:, :, oy:oy + crop, ox:ox + crop]
        fg = ((x - bgc).abs().amax(dim=1, keepdim=True) > 0.02).float()
        w = 1.0 + (fg_weight - 1.0) * fg
        if edge_weight:
            edge = F.max_pool2d(fg, 5, 1, 2) + F.max_pool2d(-fg, 5, 1, 2)  # dilation minus erosion: 1 near an edge
            w = w + edge_weight * edge
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g)
        y = vae.decode(z)
        rec = (w * ((y - x) ** 2 + 0.5 * (y - x).abs())).mean() / w.mean()
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        loss = rec + 1e-4 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        avg = rec.item() if avg is None else 0.98 * avg + 0.02 * rec.item()
        if step % 50 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} rec {avg:.4f} kl {kl.item():.2f} lr {lr:.2e} ({time.time() - t0:.0f}s)")
    torch.save(vae.state_dict(), path + ".tmp")
    os.replace(path + ".tmp", path)


@torch.no_grad()
def encode_all(vae, imgs, path):
    if os.path.exists(path):
        return torch.load(path)
    out = []
    for i in range(0, len(imgs), 128):
        out.append(vae.encode(to_tensor(imgs[i:i + 128]))[0])
    lat = torch.cat(out)
    torch.save(lat, path + ".tmp")
    os.replace(path + ".tmp", path)  # a decoder run beside this one may be waiting for the file
    return lat


def finetune_decoder(vae, lat_raw, imgs, steps, batch, path, seed, deadline=None, save_every=300.0, lr_max=3e-4):
    """Decoder-only fine-tuning on the cached (frozen-encoder) latents: the latent space the UNet learns is unchanged.
    Pixels that differ from the background (the top-left pixel) weigh 5x: small objects' shape and colour matter more
    than the flat background. 8x8 latent crops -> 64x64 image crops."""
    ck = torch.load(path) if os.path.exists(path) else None
    if ck is not None:
        vae.load_state_dict(ck["vae"])
        log(f"decoder fine-tune: loaded {path} (step {ck['step']})")
        if ck.get("done"):
            return
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr_max, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    t0 = last = time.time()
    avg = None
    step = start = 0
    if ck is not None:  # resume an interrupted fine-tuning (its optimiser restarts)
        start = ck["step"] + 1
        g.manual_seed(seed + start)
    for step in range(start, steps):
        if deadline and time.time() > deadline:
            break
        frac = step / steps if deadline is None else max(step / steps, (time.time() - t0) / max(1.0, deadline - t0))
        lr = lr_max * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, len(imgs), (batch,), generator=g)
        ox, oy = [int(i) for i in torch.randint(0, 9, (2,), generator=g)]
        z = lat_raw[idx][:, :, oy:oy + 8, ox:ox + 8]
        x = to_tensor(imgs[idx.numpy()])
        bgc = x[:, :, :1, :1]
        x = x[:, :, 8 * oy:8 * oy + 64, 8 * ox:8 * ox + 64]
        w = 1.0 + 4.0 * ((x - bgc).abs().amax(dim=1, keepdim=True) > 0.02).float()
        y = vae.decode(z)
        loss = (w * ((y - x) ** 2 + 0.5 * (y - x).abs())).mean() / w.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 50 == 0:
            log(f"decoder step {step}/{steps} loss {avg:.4f} lr {lr:.2e} ({time.time() - t0:.0f}s)")
        if time.time() - last > save_every:
            save_decoder(path, vae, step, False)
            last = time.time()
    for p in params:
        p.requires_grad_(False)
    save_decoder(path, vae, step, True)
    log(f"decoder fine-tune done at step {step}")


def save_decoder(path, vae, step, done):
    """Atomic: a training run beside this one reads the file at its exports."""
    torch.save({"vae": vae.state_dict(), "step": step, "done": done}, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_export(model_dir, text_encoder, unet, vae):
    """Loads an exported easel-shapes folder's weights (fp16 -> fp32); returns its VAE scaling_factor. The VAE's
    latent mean is already folded into quant_conv, so its posterior means are the centred latents the UNet knows."""
    text_encoder.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "text_encoder", "model.safetensors")))
    unet.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "unet", "diffusion_pytorch_model.safetensors")))
    vae.load_state_dict(ex.load_safetensors(os.path.join(model_dir, "vae", "diffusion_pytorch_model.safetensors")))
    with open(os.path.join(model_dir, "vae", "config.json")) as f:
        return float(json.load(f)["scaling_factor"])


@torch.no_grad()
def bake_latent_mean(vae, mean):
    """Shifts the posterior mean by -mean (quant_conv bias) and compensates in post_quant_conv: decode is unchanged."""
    c = mean.numel()
    vae.quant_conv.bias[:c] -= mean
    w = vae.post_quant_conv.weight[:, :, 0, 0]
    vae.post_quant_conv.bias += w @ mean


def bake_latent_std(vae, std):
    """Divides each (already centred) latent channel by its std (quant_conv rows of the mean, and the log-variance
    shifted to match) and multiplies post_quant_conv's input columns by it: decode is unchanged, and every channel
    then carries the same noise-to-signal ratio at each diffusion timestep, as one scaling_factor assumes."""
    c = std.numel()
    vae.quant_conv.weight[:c] /= std[:, None, None, None]
    vae.quant_conv.bias[:c] /= std
    vae.quant_conv.bias[c:2 * c] -= 2 * std.log()
    vae.post_quant_conv.weight[:, :c] *= std[None, :, None, None]


# ---------------------------------------------------------------------------------------------------------------


def alphas_cumprod():
    betas = torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


def ema_update(ema, model, decay):
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(p, alpha=1 - decay)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/easel-shapes")
    ap.add_argument("--runs", default=os.path.join(HERE, "runs"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--scenes", type=int, default=16000)
    ap.add_argument("--latent-channels", type=int, default=12, help="VAE latent channels (= UNet in/out channels)")
    ap.add_argument("--vae-steps", type=int, default=6000)
    ap.add_argument("--vae-fg-weight", type=float, default=5.0, help="loss weight of pixels unlike the background")
    ap.add_argument("--vae-edge-weight", type=float, default=5.0, help="extra loss weight of pixels near a shape's edge")
    ap.add_argument("--vae-crop", type=int, default=96, help="VAE training crop size (128: whole images, half as fast per pixel on this CPU as 64 or 96; a 96 crop always holds the middle third)")
    ap.add_argument("--vae-batch", type=int, default=8)
    ap.add_argument("--latent-whiten", action=argparse.BooleanOptionalAction, default=True, help="give every latent "
                    "channel unit std (baked into the VAE's quant convs) before one scaling_factor is fitted")
    ap.add_argument("--decoder-steps", type=int, default=0, help="decoder-only fine-tuning steps (0: none)")
    ap.add_argument("--steps", type=int, default=21000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--cfg-drop", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--deadline", default=None, help="UTC HH:MM: stop training then (export what exists)")
    ap.add_argument("--export-every", type=float, default=15.0, help="minutes")
    ap.add_argument("--checkpoint-every", type=float, default=5.0, help="minutes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-random", action="store_true", help="export the untrained model and stop")
    ap.add_argument("--export-only", action="store_true", help="export from the latest checkpoint and stop")
    ap.add_argument("--init-from", default=None, help="exported folder to continue from: its VAE (latent space "
                    "unchanged, VAE training skipped) and its text encoder + UNet as the starting point")
    ap.add_argument("--decoder-only", action="store_true", help="with --init-from: only fine-tune the VAE decoder "
                    "(into --runs/vae_decoder.pt, which a UNet run on the same --runs picks up at every export)")
    ap.add_argument("--decoder-lr", type=float, default=3e-4)
    # The settings the evaluation reads back best (RESULTS.md: guidance 2 beats 7.5 by 17 points of colour and 8 of
    # shape on this model; 25 DPM-Solver++ steps match 50).
    ap.add_argument("--default-steps", type=int, default=25, help="steps Easel uses when a request names none "
                    "(model_index.json _easel_defaults)")
    ap.add_argument("--default-guidance", type=float, default=2.0, help="guidance scale Easel uses by default")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.runs, exist_ok=True)
    t_start = time.time()
    deadline = None
    if args.deadline:
        now = datetime.datetime.utcnow()
        hh, mm = map(int, args.deadline.split(":"))
        d = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if d < now:
            d += datetime.timedelta(days=1)
        deadline = time.time() + (d - now).total_seconds()

    tok = tk.build(shapes.vocabulary_words(), MAX_LEN)
    text_cfg, unet_cfg, vae_cfg, sched_cfg = configs(len(tok.vocab), tok.bos, tok.eos, latent_channels=args.latent_channels)
    text_encoder = CLIPTextModel(text_cfg)
    unet = UNet2DConditionModel(unet_cfg)
    vae = AutoencoderKL(vae_cfg)
    with torch.no_grad():  # transformers' init scale for the embeddings
        text_encoder.text_model.embeddings.token_embedding.weight.normal_(0, 0.02)
        text_encoder.text_model.embeddings.position_embedding.weight.normal_(0, 0.02)
    log(f"params: text {nparams(text_encoder)} unet {nparams(unet)} vae {nparams(vae)}")
    recipe = {k: v for k, v in vars(args).items()
              if k not in ("export_random", "export_only", "decoder_only", "out", "runs", "threads", "default_steps", "default_guidance")}
    call_defaults = {k: v for k, v in (("num_inference_steps", args.default_steps), ("guidance_scale", args.default_guidance)) if v is not None}
    init_scaling = load_export(args.init_from, text_encoder, unet, vae) if args.init_from else None
    continued_from = {}
    if args.init_from:  # what this run starts from, as its manifest says (before --out may overwrite it)
        with open(os.path.join(args.init_from, "manifest.json")) as f:
            m = json.load(f)
        continued_from = {"continued_from": {k: m.get(k) for k in ("exported_at", "unet_steps", "recipe", "continued_from") if m.get(k)}}
    if init_scaling is not None:
        log(f"initialised from {args.init_from} (scaling_factor {init_scaling})")
    dec_path = os.path.join(args.runs, "vae_decoder.pt")

    def do_export(te, un, va, scaling, step, phase):
        if args.init_from and os.path.exists(dec_path):  # the decoder fine-tuned beside this run (same latents)
            ck = torch.load(dec_path)
            va.load_state_dict(ck["vae"])
            ex.fp16_roundtrip(va)
            log(f"export: VAE decoder from {dec_path} (step {ck['step']}, {'done' if ck['done'] else 'running'})")
        vc = dict(vae_cfg, scaling_factor=round(float(scaling), 6))
        ex.export(args.out, tok, text_cfg, unet_cfg, vc, sched_cfg, te, un, va, {
            "name": "easel-shapes",
            "description": "Text-to-image latent diffusion for flat shapes (128x128): 12 colours, circle/square/"
                           "triangle/star, 3 sizes, 9 positions, background colour, one or two objects.",
            "exported_at": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "phase": phase, "unet_steps": step, "recipe": recipe,
            "retrain": "python3 tools/train-default-model/train.py --out models/easel-shapes",
            "params": {"text_encoder": nparams(te), "unet": nparams(un), "vae": nparams(va)},
            "weights_dtype": "float16",
            **continued_from,
        }, call_defaults)
        log(f"exported {args.out} (step {step}, {phase})")

    if args.export_random:
        do_export(text_encoder, unet, vae, 1.0, 0, "random-init")
        return

    imgs, scenes = render_dataset(os.path.join(args.runs, "data.npz"), args.scenes, args.seed)
    log(f"dataset: {len(scenes)} scenes ({time.time() - t_start:.0f}s)")
    if init_scaling is None:
        train_vae(vae, imgs, args.vae_steps, args.vae_batch, os.path.join(args.runs, "vae.pt"), args.seed + 1,
                  fg_weight=args.vae_fg_weight, edge_weight=args.vae_edge_weight, crop=args.vae_crop)
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    ex.fp16_roundtrip(vae)
    lat = encode_all(vae, imgs, os.path.join(args.runs, "latents.pt"))
    if init_scaling is not None:
        if args.decoder_only:
            finetune_decoder(vae, lat, imgs, args.decoder_steps, args.vae_batch, dec_path, args.seed + 4,
                             deadline=deadline, lr_max=args.decoder_lr)
            return
        # Same encoder, so the same latent space: no new mean or scale.
        scaling = init_scaling
        lat = lat * scaling
        mean = lat.mean(dim=(0, 2, 3))
    else:
        if args.decoder_steps:
            finetune_decoder(vae, lat, imgs, args.decoder_steps, args.vae_batch, dec_path, args.seed + 4,
                             lr_max=args.decoder_lr)
            ex.fp16_roundtrip(vae)
        mean = lat.mean(dim=(0, 2, 3))
        bake_latent_mean(vae, mean)
        lat = lat - mean[None, :, None, None]
        std = lat.std(dim=(0, 2, 3))
        log(f"latent channel std {[round(v, 4) for v in std.tolist()]}")
        if args.latent_whiten:
            bake_latent_std(vae, std)
            lat = lat / std[None, :, None, None]
        scaling = 1.0 / lat.std().item()
        lat = lat * scaling
    log(f"latents {tuple(lat.shape)} channel mean {mean.tolist()} scaling_factor {scaling:.5f} ({time.time() - t_start:.0f}s)")

    # ---- text encoder + UNet
    ckpt_path = os.path.join(args.runs, "unet.pt")
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    ema_unet = copy.deepcopy(unet)
    ema_text = copy.deepcopy(text_encoder)
    step = 0
    rng = random.Random(args.seed + 2)
    g = torch.Generator().manual_seed(args.seed + 3)
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        unet.load_state_dict(ck["unet"])
        text_encoder.load_state_dict(ck["text"])
        ema_unet.load_state_dict(ck["ema_unet"])
        ema_text.load_state_dict(ck["ema_text"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        rng.setstate(ck["rng"])
        g.set_state(ck["gen"])
        log(f"resumed at step {step}")
    if args.export_only:
        do_export(ema_text, ema_unet, vae, scaling, step, "export-only")
        return

    acp = alphas_cumprod()
    empty = torch.tensor([tok.encode("")])
    last_ckpt = last_export = time.time()
    t0 = time.time()
    if deadline and os.path.exists(os.path.join(args.runs, "unet_t0.json")):
        t0 = json.load(open(os.path.join(args.runs, "unet_t0.json")))["t0"]  # keep the schedule across resumes
    elif deadline:
        json.dump({"t0": t0}, open(os.path.join(args.runs, "unet_t0.json"), "w"))
    s0 = step
    t_loop = time.time()
    loss_avg = None

    def save_ckpt():
        torch.save({"unet": unet.state_dict(), "text": text_encoder.state_dict(), "ema_unet": ema_unet.state_dict(),
                    "ema_text": ema_text.state_dict(), "opt": opt.state_dict(), "step": step, "rng": rng.getstate(),
                    "gen": g.get_state()}, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)

    warm = 200
    while step < args.steps:
        if deadline and time.time() > deadline:
            log(f"deadline reached at step {step}")
            break
        frac = step / args.steps
        if deadline:  # finish the decay by the deadline even when the machine is slower than planned
            frac = min(1.0, max(frac, (time.time() - t0) / max(1.0, deadline - t0)))
        lr = args.lr * min(1.0, (step + 1) / warm) * (1.0 if frac < 0.6 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (frac - 0.6) / 0.4)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, len(scenes), (args.batch,), generator=g)
        x0 = lat[idx]
        prompts = [shapes.scene_prompt(scenes[i], rng) for i in idx.tolist()]
        ids = torch.tensor([tok.encode(p) for p in prompts])
        drop = torch.rand(args.batch, generator=g) < args.cfg_drop
        ids[drop] = empty
        t = torch.randint(0, 1000, (args.batch,), generator=g)
        a = acp[t].sqrt()[:, None, None, None]
        s = (1 - acp[t]).sqrt()[:, None, None, None]
        noise = torch.randn(x0.shape, generator=g)
        xt = a * x0 + s * noise
        v = a * noise - s * x0
        ctx = text_encoder(ids)
        pred = unet(xt, t.float(), ctx)
        snr = acp[t] / (1 - acp[t])
        w = torch.clamp(snr, max=5.0) / (snr + 1)  # min-SNR-5 weighting, v-prediction form
        loss = (w * ((pred - v) ** 2).mean(dim=(1, 2, 3))).mean() / w.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema_update(ema_unet, unet, min(args.ema, (1 + step) / (10 + step)))
        ema_update(ema_text, text_encoder, min(args.ema, (1 + step) / (10 + step)))
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if step % 50 == 0:
            rate = (time.time() - t_loop) / (step - s0)
            log(f"step {step}/{args.steps} loss {loss_avg:.4f} lr {lr:.2e} {rate:.2f}s/step eta {(args.steps - step) * rate / 60:.0f} min")
        if time.time() - last_ckpt > args.checkpoint_every * 60:
            save_ckpt()
            last_ckpt = time.time()
        if time.time() - last_export > args.export_every * 60:
            do_export(ema_text, ema_unet, vae, scaling, step, "training")
            last_export = time.time()
    save_ckpt()
    do_export(ema_text, ema_unet, vae, scaling, step, "final")
    log(f"done in {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
