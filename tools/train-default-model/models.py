"""Torch modules whose state_dict keys and math are those of diffusers' UNet2DConditionModel (SD1.x layout),
AutoencoderKL and transformers' CLIPTextModel, restricted to the options this model uses."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------------
# CLIP text encoder (transformers modeling_clip.py)


class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask):
        B, S, D = x.shape
        h = self.heads
        q = self.q_proj(x).view(B, S, h, D // h).transpose(1, 2)
        k = self.k_proj(x).view(B, S, h, D // h).transpose(1, 2)
        v = self.v_proj(x).view(B, S, h, D // h).transpose(1, 2)
        w = (q @ k.transpose(-1, -2)) * (D // h) ** -0.5 + mask
        a = w.softmax(-1) @ v
        return self.out_proj(a.transpose(1, 2).reshape(B, S, D))


class CLIPMLP(nn.Module):
    def __init__(self, d, inner):
        super().__init__()
        self.fc1 = nn.Linear(d, inner)
        self.fc2 = nn.Linear(inner, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, d, heads, inner, eps):
        super().__init__()
        self.self_attn = CLIPAttention(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = CLIPMLP(d, inner)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, vocab, d, positions):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = nn.Embedding(positions, d)


class CLIPEncoder(nn.Module):
    def __init__(self, d, heads, inner, layers, eps):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(d, heads, inner, eps) for _ in range(layers)])


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.embeddings = CLIPEmbeddings(cfg["vocab_size"], d, cfg["max_position_embeddings"])
        self.encoder = CLIPEncoder(d, cfg["num_attention_heads"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["layer_norm_eps"])
        self.final_layer_norm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])

    def forward(self, ids):
        S = ids.shape[1]
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[:S][None]
        mask = torch.full((S, S), torch.finfo(torch.float32).min).triu(1)
        for layer in self.encoder.layers:
            x = layer(x, mask)
        return self.final_layer_norm(x)


class CLIPTextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids):
        return self.text_model(ids)


# ---------------------------------------------------------------------------------------------------------------
# diffusers building blocks


def timestep_embedding(t, dim, flip_sin_to_cos=True, shift=0):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)
        self.cin, self.cout = cin, cout

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.cin != self.cout:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    def __init__(self, qdim, kvdim, heads, head_dim):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(qdim, inner, bias=False)
        self.to_k = nn.Linear(kvdim, inner, bias=False)
        self.to_v = nn.Linear(kvdim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, qdim)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, L, _ = x.shape
        h = self.heads
        q = self.to_q(x)
        k = self.to_k(ctx)
        v = self.to_v(ctx)
        d = q.shape[-1] // h
        q = q.view(B, L, h, d).transpose(1, 2)
        k = k.view(B, -1, h, d).transpose(1, 2)
        v = v.view(B, -1, h, d).transpose(1, 2)
        a = ((q @ k.transpose(-1, -2)) * d ** -0.5).softmax(-1) @ v
        return self.to_out[0](a.transpose(1, 2).reshape(B, L, h * d))


class GEGLU(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.proj = nn.Linear(din, dout * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, cross):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross, heads, head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    def __init__(self, channels, heads, cross, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(channels, heads, channels // heads, cross)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        h = h.reshape(B, H, W, C).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


class Downsample2D(nn.Module):
    def __init__(self, c, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, size=None):
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


# ---------------------------------------------------------------------------------------------------------------
# UNet2DConditionModel


class Block(nn.Module):
    """Down/up block container with diffusers' attribute names (resnets, attentions, downsamplers/upsamplers)."""


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        n = len(ch)
        L = cfg["layers_per_block"]
        G = cfg["norm_num_groups"]
        eps = cfg["norm_eps"]
        heads = cfg["attention_head_dim"]
        heads = heads if isinstance(heads, list) else [heads] * n
        X = cfg["cross_attention_dim"]
        E = ch[0] * 4
        self.cfg = cfg
        self.time_embedding = TimestepEmbedding(ch[0], E)
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cin = ch[0]
        skip_ch = [ch[0]]
        for i, t in enumerate(cfg["down_block_types"]):
            b = Block()
            b.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else ch[i], ch[i], E, G, eps) for j in range(L)])
            if t == "CrossAttnDownBlock2D":
                b.attentions = nn.ModuleList([Transformer2DModel(ch[i], heads[i], X, G) for _ in range(L)])
            skip_ch += [ch[i]] * L
            if i < n - 1:
                b.downsamplers = nn.ModuleList([Downsample2D(ch[i], cfg["downsample_padding"])])
                skip_ch.append(ch[i])
            self.down_blocks.append(b)
            cin = ch[i]
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList([ResnetBlock2D(ch[-1], ch[-1], E, G, eps) for _ in range(2)])
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(ch[-1], heads[-1], X, G)])
        self.up_blocks = nn.ModuleList()
        rev = ch[::-1]
        rheads = heads[::-1]
        prev = rev[0]
        for i, t in enumerate(cfg["up_block_types"]):
            b = Block()
            res = []
            for j in range(L + 1):
                s = skip_ch.pop()
                res.append(ResnetBlock2D((prev if j == 0 else rev[i]) + s, rev[i], E, G, eps))
            b.resnets = nn.ModuleList(res)
            if t == "CrossAttnUpBlock2D":
                b.attentions = nn.ModuleList([Transformer2DModel(rev[i], rheads[i], X, G) for _ in range(L + 1)])
            if i < n - 1:
                b.upsamplers = nn.ModuleList([Upsample2D(rev[i])])
            self.up_blocks.append(b)
            prev = rev[i]
        self.conv_norm_out = nn.GroupNorm(G, ch[0], eps=eps)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx):
        emb = self.time_embedding(timestep_embedding(t, self.cfg["block_out_channels"][0], self.cfg["flip_sin_to_cos"], self.cfg["freq_shift"]))
        x = self.conv_in(x)
        skips = [x]
        for b in self.down_blocks:
            for j, r in enumerate(b.resnets):
                x = r(x, emb)
                if hasattr(b, "attentions"):
                    x = b.attentions[j](x, ctx)
                skips.append(x)
            if hasattr(b, "downsamplers"):
                x = b.downsamplers[0](x)
                skips.append(x)
        x = self.mid_block.resnets[0](x, emb)
        x = self.mid_block.attentions[0](x, ctx)
        x = self.mid_block.resnets[1](x, emb)
        for b in self.up_blocks:
            for j, r in enumerate(b.resnets):
                x = r(torch.cat([x, skips.pop()], 1), emb)
                if hasattr(b, "attentions"):
                    x = b.attentions[j](x, ctx)
            if hasattr(b, "upsamplers"):
                x = b.upsamplers[0](x, skips[-1].shape[-2:])
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---------------------------------------------------------------------------------------------------------------
# AutoencoderKL (no mid-block attention)


class VaeMid(nn.Module):
    def __init__(self, c, G):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, None, G, 1e-6) for _ in range(2)])

    def forward(self, x):
        return self.resnets[1](self.resnets[0](x))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        G = cfg["norm_num_groups"]
        L = cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            b = Block()
            b.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else c, c, None, G, 1e-6) for j in range(L)])
            if i < len(ch) - 1:
                b.downsamplers = nn.ModuleList([Downsample2D(c, padding=0)])
            self.down_blocks.append(b)
            cin = c
        self.mid_block = VaeMid(ch[-1], G)
        self.conv_norm_out = nn.GroupNorm(G, ch[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            for r in b.resnets:
                x = r(x)
            if hasattr(b, "downsamplers"):
                x = b.downsamplers[0](x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_out_channels"]
        rev = ch[::-1]
        G = cfg["norm_num_groups"]
        L = cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], rev[0], 3, padding=1)
        self.mid_block = VaeMid(rev[0], G)
        self.up_blocks = nn.ModuleList()
        cin = rev[0]
        for i, c in enumerate(rev):
            b = Block()
            b.resnets = nn.ModuleList([ResnetBlock2D(cin if j == 0 else c, c, None, G, 1e-6) for j in range(L + 1)])
            if i < len(rev) - 1:
                b.upsamplers = nn.ModuleList([Upsample2D(c)])
            self.up_blocks.append(b)
            cin = c
        self.conv_norm_out = nn.GroupNorm(G, ch[0], eps=1e-6)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            for r in b.resnets:
                x = r(x)
            if hasattr(b, "upsamplers"):
                x = b.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        Lc = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * Lc, 2 * Lc, 1)
        self.post_quant_conv = nn.Conv2d(Lc, Lc, 1)

    def encode(self, x):
        """-> (mean, logvar) of the posterior."""
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))
