"""Training and scoring the two encoder kinds, the counterpart of :mod:`model.train_gpt`.

* an **encoder-decoder** learns source → target pairs (:class:`model.pairs.PairCorpus`) by
  predicting each target token from the source and the target before it (teacher forcing); its
  score is the exact match of greedy translations of held-out pairs;
* an **encoder** (BERT-style) learns masked-token prediction on any text (a
  :class:`model.corpora.Corpus`): 15 % of the positions of a window are chosen, and of those
  80 % become ``[MASK]``, 10 % a random token and 10 % stay (Devlin et al. 2019, section 3.1);
  the loss and the score count only the chosen positions.

The loop is :class:`model.trainer.Trainer`, as for a GPT; checkpoints are the same files.
While training, each sample comes with a score of held-out data (``callbacks.on_score``: exact
match of :data:`LIVE_PAIRS` held-out pairs, or masked-token accuracy of a few held-out batches)
and the attention probe records, for an encoder-decoder, the cross-attention of one fixed
held-out pair (:func:`attention_probe_pair`) and, for an encoder, the self-attention of its
masked probe window.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .capture import capture
from .config import CaptureSpec, ModelConfig, TrainConfig
from .corpora import Corpus, CorpusError
from .devices import resolve_device
from .encoder_decoder import EncoderDecoder
from .pairs import PairCorpus, exact_match
from .tokenizer import MASK_CHAR, PAD_CHAR, CharTokenizer, Tokenizer
from .trainer import Callbacks, TrainControl, Trainer, TrainingDiverged, TrainResult
from .transformer import GPT

MASK_FRACTION = 0.15  # of the positions of a window that the encoder must predict
LIVE_PAIRS = 200  # held-out pairs scored with every sample while training (all at the end)
LIVE_BATCHES = 4  # held-out batches of masked-token accuracy with every sample


# -- encoder-decoder ---------------------------------------------------------------------------
@torch.no_grad()
def translate(model: EncoderDecoder, tokenizer: Tokenizer, sources: list[str],
              max_len: int | None = None) -> list[str]:
    """The greedy target of each source (the model's best guess, token by token)."""
    cfg = model.config
    ids = [tokenizer.encode(s) + [cfg.eos_id] for s in sources]
    longest = max(len(i) for i in ids)
    if longest > cfg.block_size:
        raise ValueError(f"a source has {longest - 1} tokens; with its end token that is more "
                         f"than the model's block size {cfg.block_size}")
    src = torch.full((len(ids), longest), cfg.pad_id, dtype=torch.long)
    for b, row in enumerate(ids):
        src[b, :len(row)] = torch.tensor(row)
    was_training = model.training
    model.eval()
    try:
        out = model.greedy(src.to(model.device), max_len)
    finally:
        model.train(was_training)
    return [tokenizer.decode(o) for o in out]


def seq2seq_accuracy(model: EncoderDecoder, tokenizer: Tokenizer, pairs, batch_size: int = 256
                     ) -> tuple[float, list[tuple[str, str, str]]]:
    """Exact match of greedy translations of ``pairs`` and the misses."""
    return exact_match(lambda srcs: translate(model, tokenizer, srcs), pairs, batch_size)


def attention_probe_pair(corpus: PairCorpus) -> tuple[str, str]:
    """The held-out pair whose cross-attention the film strip follows: the longest of the first
    64 held-out pairs (the first of equals), so the map has room to show an alignment."""
    return max(corpus.val_pairs[:64], key=lambda p: len(p[0]) + len(p[1]))


@torch.no_grad()
def cross_attention_of(model: EncoderDecoder, tokenizer: Tokenizer, source: str, target: str
                       ) -> np.ndarray:
    """(L, H, T, S) cross-attention of the decoder reading ``target`` (teacher forcing: row i
    is the decoder input ``bos`` + target[:i], which predicts target[i], the last row predicts
    the end token) over ``source`` and its end token."""
    cfg = model.config
    src = torch.tensor([tokenizer.encode(source) + [cfg.eos_id]], device=model.device)
    tgt = torch.tensor([[cfg.bos_id] + tokenizer.encode(target)], device=model.device)
    spec = dataclasses.replace(CaptureSpec.nothing(), attention=True)
    with capture(model, spec) as rec:
        model(src, tgt)
    return torch.stack(rec.cross_attn_probs)[:, 0].float().cpu().numpy()


def mirror_scores(cross_attention: np.ndarray, n: int) -> np.ndarray:
    """(L, H): for each head of a (L, H, T, S) cross-attention of a reversed pair of ``n``
    letters (:func:`cross_attention_of`), the fraction of target positions i < n whose heaviest
    weight falls on source position n-1-i (the letter that position must write)."""
    a = np.asarray(cross_attention)
    if n < 1 or a.shape[-2] < n or a.shape[-1] < n:
        raise ValueError(f"a map of {a.shape[-2]} target × {a.shape[-1]} source positions "
                         f"has no {n} mirrored positions")
    heaviest = a[..., :n, :].argmax(-1)  # (L, H, n)
    return (heaviest == np.arange(n - 1, -1, -1)).mean(-1)


def seq2seq_config(corpus: PairCorpus, cfg: ModelConfig) -> ModelConfig:
    """``cfg`` as an encoder-decoder for the corpus's vocabulary and special tokens."""
    return dataclasses.replace(cfg, kind="encoder-decoder", vocab_size=corpus.vocab_size,
                               pad_id=corpus.pad_id, bos_id=corpus.bos_id, eos_id=corpus.eos_id,
                               mask_id=-1)


def train_encoder_decoder(corpus: PairCorpus, model_cfg: ModelConfig, train_cfg: TrainConfig,
                          out_path, callbacks: Callbacks | None = None,
                          control: TrainControl | None = None, n_samples: int = 3
                          ) -> TrainResult:
    """Train a new encoder-decoder on ``corpus`` and save it to ``out_path``. Samples are a
    few held-out sources with the model's current translation."""
    cfg = seq2seq_config(corpus, model_cfg)
    corpus.check_block_size(cfg.block_size)
    device = resolve_device(train_cfg.device)
    torch.manual_seed(train_cfg.seed)
    model = EncoderDecoder(cfg)
    tokenizer = corpus.tokenizer
    gen = torch.Generator().manual_seed(train_cfg.seed)
    B = train_cfg.batch_size
    eval_gen = torch.Generator().manual_seed(train_cfg.seed + 1)
    fixed = {s: [corpus.get_batch(s, B, generator=eval_gen, device=device)
                 for _ in range(train_cfg.eval_iters)] for s in ("train", "val")}
    probes = corpus.val_pairs[:n_samples]

    def sample_fn(m) -> str:
        got = translate(m, tokenizer, [s for s, _ in probes])
        return "\n".join(f"{s} → {p}" + ("  ✓" if p == t else f"  (want {t})")
                         for (s, t), p in zip(probes, got, strict=True))

    probe_src, probe_tgt = attention_probe_pair(corpus)
    live = corpus.val_pairs[:LIVE_PAIRS]
    return _run(model, tokenizer, corpus.name, train_cfg, out_path, callbacks, control, device,
                lambda split: corpus.get_batch(split, B, generator=gen, device=device),
                lambda split, i: fixed[split][i], sample_fn,
                {"pairs": corpus.n_pairs, "task": corpus.task,
                 "held_out_pairs": len(corpus.val_pairs)},
                lambda m: {"exact_match": seq2seq_accuracy(m, tokenizer,
                                                           corpus.val_pairs)[0]},
                live_score=lambda m: {"exact_match": seq2seq_accuracy(m, tokenizer, live)[0]},
                attention_fn=lambda m: cross_attention_of(m, tokenizer, probe_src, probe_tgt))


# -- encoder (masked-token prediction) ---------------------------------------------------------
def encoder_tokenizer(text: str) -> CharTokenizer:
    """The characters of ``text`` and ``[MASK]`` (and padding, for short inputs)."""
    for c in (MASK_CHAR, PAD_CHAR):
        if c in text:
            raise CorpusError(f"the text holds {c!r}, which an encoder reserves for a special "
                              "token")
    return CharTokenizer(sorted(set(text) | {MASK_CHAR, PAD_CHAR}))


def encoder_config(tokenizer: CharTokenizer, cfg: ModelConfig) -> ModelConfig:
    """``cfg`` as a BERT-style encoder for ``tokenizer`` (which holds ``[MASK]``)."""
    if MASK_CHAR not in tokenizer.stoi:
        raise CorpusError("the vocabulary has no [MASK] token")
    return dataclasses.replace(cfg, kind="encoder", vocab_size=tokenizer.vocab_size,
                               mask_id=tokenizer.stoi[MASK_CHAR],
                               pad_id=tokenizer.stoi.get(PAD_CHAR, -1), bos_id=-1, eos_id=-1,
                               n_enc_layer=0)


def mask_tokens(x: torch.Tensor, mask_id: int, vocab_size: int, generator: torch.Generator,
                fraction: float = MASK_FRACTION, corrupt: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a batch (B, T): the input with the chosen positions hidden, and the
    targets (the original token at a chosen position, -1 elsewhere). Every row has at least one
    chosen position. ``corrupt=False`` replaces every chosen token by ``[MASK]`` (scoring)."""
    B, T = x.shape
    u = torch.rand((B, T), generator=generator)
    chosen = u < fraction
    first = torch.randint(T, (B,), generator=generator)
    chosen[torch.arange(B), first] = True  # at least one per row
    roll = torch.rand((B, T), generator=generator)
    random_ids = torch.randint(vocab_size, (B, T), generator=generator)
    chosen, roll, random_ids = (t.to(x.device) for t in (chosen, roll, random_ids))
    inp = x.clone()
    if corrupt:
        inp[chosen & (roll < 0.8)] = mask_id
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        inp[swap] = random_ids[swap]
    else:
        inp[chosen] = mask_id
    targets = torch.where(chosen, x, torch.full_like(x, -1))
    return inp, targets


@torch.no_grad()
def masked_accuracy(model: GPT, corpus: Corpus, split: str = "val", batches: int = 20,
                    batch_size: int = 32, seed: int = 0) -> tuple[float, int]:
    """The fraction of ``[MASK]`` positions whose most likely token is the hidden one, over
    ``batches`` fixed random windows of a split, and how many positions were scored."""
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    hits = total = 0
    try:
        for _ in range(batches):
            x, _ = corpus.get_batch(split, batch_size, cfg.block_size, generator=gen)
            inp, targets = mask_tokens(x, cfg.mask_id, cfg.vocab_size, gen, corrupt=False)
            logits, _ = model(inp.to(model.device), all_logits=True)
            chosen = targets != -1
            hits += int((logits.argmax(-1).cpu()[chosen] == targets[chosen]).sum())
            total += int(chosen.sum())
    finally:
        model.train(was_training)
    return (hits / total if total else float("nan")), total


def fill_masks(model: GPT, tokenizer: Tokenizer, text: str) -> tuple[str, torch.Tensor]:
    """``text`` (with ``[MASK]`` written as :data:`~model.tokenizer.MASK_CHAR`) with every mask
    replaced by the model's most likely token, and the probabilities (T, V) at every position."""
    ids = tokenizer.encode(text)
    if len(ids) > model.config.block_size:
        raise ValueError(f"the text has {len(ids)} tokens, more than the block size "
                         f"{model.config.block_size}")
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids], device=model.device), all_logits=True)
    probs = torch.softmax(logits[0].float(), dim=-1).cpu()
    best = probs.argmax(-1).tolist()
    filled = [b if i == model.config.mask_id else i for i, b in zip(ids, best, strict=True)]
    return tokenizer.decode(filled), probs


def train_encoder(corpus: Corpus, model_cfg: ModelConfig, train_cfg: TrainConfig, out_path,
                  callbacks: Callbacks | None = None, control: TrainControl | None = None
                  ) -> TrainResult:
    """Train a new BERT-style encoder on ``corpus`` (whose tokenizer holds ``[MASK]``) and
    save it to ``out_path``. Samples show a held-out window with masks and the model's fill."""
    tokenizer = corpus.tokenizer
    if not isinstance(tokenizer, CharTokenizer):
        raise CorpusError(f"{corpus.name}: an encoder is trained on a character vocabulary")
    cfg = encoder_config(tokenizer, model_cfg)
    corpus.check_block_size(cfg.block_size)
    device = resolve_device(train_cfg.device)
    torch.manual_seed(train_cfg.seed)
    model = GPT(cfg)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    B, T = train_cfg.batch_size, cfg.block_size

    def get_batch(split: str):
        x, _ = corpus.get_batch(split, B, T, generator=gen)
        inp, targets = mask_tokens(x, cfg.mask_id, cfg.vocab_size, gen)
        return inp.to(device), targets.to(device)

    eval_gen = torch.Generator().manual_seed(train_cfg.seed + 1)
    fixed = {}
    for s in ("train", "val"):
        fixed[s] = []
        for _ in range(train_cfg.eval_iters):
            x, _ = corpus.get_batch(s, B, T, generator=eval_gen)
            inp, targets = mask_tokens(x, cfg.mask_id, cfg.vocab_size, eval_gen)
            fixed[s].append((inp.to(device), targets.to(device)))
    probe_gen = torch.Generator().manual_seed(train_cfg.seed + 2)
    x, _ = corpus.get_batch("val", 1, min(T, 48), generator=probe_gen)
    probe, _ = mask_tokens(x, cfg.mask_id, cfg.vocab_size, probe_gen, corrupt=False)
    probe_text = tokenizer.decode(probe[0].tolist())

    def sample_fn(m) -> str:
        filled, _ = fill_masks(m, tokenizer, probe_text)
        return f"{probe_text}\n→ {filled}"

    def attention_fn(m) -> np.ndarray:  # (L, H, T, T): no causal mask, masks in the input
        spec = dataclasses.replace(CaptureSpec.nothing(), attention=True)
        with capture(m, spec) as rec:
            m(probe.to(m.device))
        return rec.stacked_probs()[:, 0].float().cpu().numpy()

    return _run(model, tokenizer, corpus.name, train_cfg, out_path, callbacks, control, device,
                get_batch, lambda split, i: fixed[split][i], sample_fn,
                {"corpus_tokens": corpus.n_tokens, "task": corpus.task},
                lambda m: {"masked_accuracy": masked_accuracy(m, corpus)[0]},
                live_score=lambda m: {"masked_accuracy": masked_accuracy(
                    m, corpus, batches=LIVE_BATCHES)[0]},
                attention_fn=attention_fn)


# -- shared ------------------------------------------------------------------------------------
def _run(model, tokenizer, corpus_name: str, train_cfg: TrainConfig, out_path,
         callbacks: Callbacks | None, control: TrainControl | None, device, get_batch,
         eval_get_batch, sample_fn, facts: dict, final_scores, live_score=None,
         attention_fn=None) -> TrainResult:
    from .checkpoints import now_iso, save_checkpoint

    callbacks = callbacks or Callbacks()

    def sample_and_score(m) -> str:  # the trainer calls it in eval mode without gradients
        text = sample_fn(m)
        if live_score is not None:
            callbacks.on_score(trainer.step, live_score(m))
        return text

    out_path = Path(out_path)
    model.to(device)
    trainer: Trainer | None = None

    def checkpoint_fn(step: int, m, optimizer) -> Path:
        summary = {
            "steps": step,
            **trainer.loss_summary(),
            "corpus": corpus_name,
            **facts,
            "date": now_iso(),
            "train_config": train_cfg.to_dict(),
            "elapsed_s": round(trainer.active_elapsed(), 2),
            "device": str(device),
            "n_params": sum(p.numel() for p in m.parameters()),
        }
        if step >= train_cfg.steps:  # the final save says how good the model is
            summary.update({k: round(v, 4) for k, v in final_scores(m).items()})
        return save_checkpoint(out_path, m, tokenizer, summary, optimizer=optimizer,
                               trainer_state={"step": step})

    trainer = Trainer(model, train_cfg, get_batch, callbacks, sample_fn=sample_and_score,
                      attention_fn=attention_fn, checkpoint_fn=checkpoint_fn, eval_get_batch=eval_get_batch, device=device,
                      control=control or TrainControl())
    callbacks.on_message(f"training a {model.config.kind} of "
                         f"{sum(p.numel() for p in model.parameters()):,} parameters on "
                         f"{device} for {train_cfg.steps} steps")
    try:
        return trainer.run()
    except TrainingDiverged as e:
        return e.result


__all__ = ["MASK_FRACTION", "LIVE_PAIRS", "LIVE_BATCHES", "attention_probe_pair",
           "cross_attention_of", "mirror_scores", "translate", "seq2seq_accuracy", "seq2seq_config",
           "train_encoder_decoder", "encoder_tokenizer", "encoder_config", "mask_tokens",
           "masked_accuracy", "fill_masks", "train_encoder"]
