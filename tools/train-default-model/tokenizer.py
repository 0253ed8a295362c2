"""A CLIP byte-level BPE tokenizer fitted to the grammar's vocabulary (every word one token), and the slow
HF CLIPTokenizer algorithm to encode with it (lower case, regex pre-split, BPE with `</w>` word ends)."""
import json
import os
import re

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
PAT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENC = bytes_to_unicode()


def bpe(token, ranks):
    word = list(token[:-1]) + [token[-1] + "</w>"]
    while len(word) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
        best = min(pairs)[0]
        if best == 1 << 30:
            break
        first, second = next((word[i], word[i + 1]) for r, i in pairs if r == best)
        out = []
        i = 0
        while i < len(word):
            if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


def pre_tokenize(text):
    text = re.sub(r"\s+", " ", text).strip().lower()
    return ["".join(BYTE_ENC[b] for b in t.encode("utf-8")) for t in PAT.findall(text)]


class Tokenizer:
    def __init__(self, vocab, merges, max_length):
        self.vocab = vocab
        self.merges = merges
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.max_length = max_length
        self.bos = vocab[BOS]
        self.eos = vocab[EOS]

    def tokens(self, text):
        out = []
        for t in pre_tokenize(text):
            out += bpe(t, self.ranks)
        return out

    def encode(self, text):
        ids = [self.vocab[t] for t in self.tokens(text)][: self.max_length - 2]
        ids = [self.bos] + ids + [self.eos]
        return ids + [self.eos] * (self.max_length - len(ids))

    def save(self, d):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "vocab.json"), "w") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(os.path.join(d, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "\n".join(self.merges) + "\n")
        special = lambda c: {"content": c, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({
                "add_prefix_space": False,
                "added_tokens_decoder": {
                    str(self.bos): dict(special(BOS), special=True),
                    str(self.eos): dict(special(EOS), special=True),
                },
                "bos_token": BOS, "clean_up_tokenization_spaces": True, "do_lower_case": True, "eos_token": EOS,
                "errors": "replace", "model_max_length": self.max_length, "pad_token": EOS,
                "tokenizer_class": "CLIPTokenizer", "unk_token": EOS,
            }, f, indent=2)
        with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
            json.dump({"bos_token": special(BOS), "eos_token": special(EOS), "pad_token": special(EOS), "unk_token": special(EOS)}, f, indent=2)


def build(words, max_length):
    """Vocabulary: 256 byte symbols, the same with `</w>`, one merge result per merge, then BOS and EOS."""
    symbols = list(BYTE_ENC.values())
    merges = []
    ranks = {}
    for _ in range(4):
        changed = False
        for w in words:
            enc = "".join(BYTE_ENC[b] for b in w.encode("utf-8"))
            toks = bpe(enc, ranks)
            while len(toks) > 1:
                m = (toks[0], toks[1])
                if m not in ranks:
                    ranks[m] = len(merges)
                    merges.append(f"{m[0]} {m[1]}")
                    changed = True
                toks = [toks[0] + toks[1]] + toks[2:]
        if not changed:
            break
    tokens = symbols + [s + "</w>" for s in symbols]
    seen = set(tokens)
    for m in merges:
        t = m.replace(" ", "")
        if t not in seen:
            tokens.append(t)
            seen.add(t)
    tokens += [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(vocab, merges, max_length)
    for w in words:
        got = tok.tokens(w)
        assert len(got) == 1, (w, got)
    return tok


def load(d):
    with open(os.path.join(d, "vocab.json")) as f:
        vocab = json.load(f)
    with open(os.path.join(d, "merges.txt")) as f:
        merges = [l.rstrip("\n") for l in f.read().split("\n")[1:] if l.strip()]
    with open(os.path.join(d, "tokenizer_config.json")) as f:
        ml = json.load(f)["model_max_length"]
    return Tokenizer(vocab, merges, ml)
