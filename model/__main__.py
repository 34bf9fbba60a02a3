"""Headless command line: ``transformer-explorer-cli train|prepare|generate|inspect|eval|export …``.

``python -m model …`` is the same (from a clone, or wherever no ``model.py`` in the current folder
shadows the package; the console script does not depend on the current folder).

The same code the GUI uses, for scripts, notebooks-free experiments and machines with no screen.
``train`` also runs as every process of ``torchrun --nproc_per_node N -m model train …``
(:mod:`model.distributed`).
Every bad input ends with one line on stderr naming the problem and a non-zero exit status.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

try:
    from .trainer import Callbacks, TrainControl  # imports torch: the second or two of start-up
except KeyboardInterrupt:  # a Ctrl+C then ends with one line too (main() handles the rest)
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C


class CLIError(Exception):
    """A problem with what the user asked for; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with this project's error style: one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see --help)\n")


def _int_at_least(s: str, low: int, bound: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"{v} must be {bound}")
    return v


def _non_negative_int(s: str) -> int:
    return _int_at_least(s, 0, "0 or more")


def _positive_int(s: str) -> int:
    return _int_at_least(s, 1, "at least 1")


def _checkpoint_arg(s: str) -> str:
    from .shipped import resolve_checkpoint
    return str(resolve_checkpoint(s))


def _corpus_arg(s: str) -> str:
    from .shipped import resolve_corpus
    return resolve_corpus(s)


CHECKPOINT_HELP = ("a model file (.safetensors), the name of a model that ships with the package "
                   "(shakespeare_char, induction), a Hugging Face GPT-2 folder, a nanoGPT "
                   "ckpt.pt, or a model name in the local Hugging Face cache (e.g. gpt2)")
CORPUS_HELP = ("a UTF-8 text file, a folder of token files (see prepare), sonnets (the sample "
               "that ships with the package) or task:copy|induction|reverse|sort")


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = all)")
    p.add_argument("--seed", type=int, default=None, help="seed for repeatable sampling")


def _ablation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ablate", default="", metavar="L.H,…",
                   help="switch attention heads off, e.g. 0.1,1.3 = head 1 of layer 0 and head 3 "
                        "of layer 1 (counted from 0)")
    p.add_argument("--ablation", default="zero", choices=("zero", "mean"),
                   help="what a switched-off head outputs: zero, or its mean over the context's "
                        "positions (default zero)")


def _ablation(a: argparse.Namespace, config):
    from .ablation import Ablation

    ablation = Ablation.parse(a.ablate, a.ablation)
    ablation.check(config)
    return ablation


def build_parser(prog: str = "python -m model") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Train, sample from and look inside small transformers: GPT-style "
                    "decoders, encoder-decoders and BERT-style encoders.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a text file or a synthetic task")
    t.add_argument("--corpus", required=True, type=_corpus_arg,
                   help=CORPUS_HELP + "; for --arch encoder-decoder a file of source<TAB>target "
                        "lines, or task:reverse|sort|copy|numbers|dates")
    t.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    t.add_argument("--arch", default="decoder", choices=("decoder", "encoder-decoder", "encoder"),
                   help="decoder (GPT, next-token prediction; the default), encoder-decoder "
                        "(Vaswani et al., source → target pairs) or encoder (BERT-style, "
                        "masked-token prediction)")
    t.add_argument("--layers", type=_positive_int, default=None,
                   help="transformer blocks (default: 4; 2 for tasks; for an encoder-decoder "
                        "its decoder's, 2)")
    t.add_argument("--enc-layers", type=int, default=0,
                   help="encoder layers of an encoder-decoder (0 = as many as --layers)")
    t.add_argument("--separate-embeddings", action="store_true",
                   help="encoder-decoder: the source gets its own embedding matrix")
    t.add_argument("--heads", type=_positive_int, default=None, help="default 4")
    t.add_argument("--embd", type=_positive_int, default=None,
                   help="width of the residual stream (default: 128; 64 for tasks and "
                        "encoder-decoders)")
    t.add_argument("--ffn", type=int, default=None, help="FFN width (default 0 = 4 × embd)")
    t.add_argument("--block", type=_positive_int, default=None,
                   help="context length in tokens (default: 64; 32 for tasks)")
    t.add_argument("--pos", default=None,
                   help="learned | sinusoidal | rotary | none (default: learned; rotary for tasks)")
    t.add_argument("--norm", default=None, help="pre | post (default pre)")
    t.add_argument("--dropout", type=float, default=None, help="default 0")
    t.add_argument("--no-bias", action="store_true", help="linear layers and norms without bias")
    t.add_argument("--untied", action="store_true", help="separate unembedding matrix")
    t.add_argument("--batch", type=_positive_int, default=None,
                   help="sequences per step (default: 12; 64 for tasks)")
    t.add_argument("--steps", type=_positive_int, default=None,
                   help="optimizer steps (default 2000; 600 for an encoder-decoder)")
    t.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 1e-3; 3e-3 for tasks)")
    t.add_argument("--min-lr", type=float, default=None, help="end of the cosine (default lr/10)")
    t.add_argument("--warmup", type=int, default=None,
                   help="warm-up steps (default: 5%% of steps; a sixth of them for tasks)")
    t.add_argument("--weight-decay", type=float, default=0.1)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--eval-interval", type=_positive_int, default=250)
    t.add_argument("--eval-iters", type=_positive_int, default=20,
                   help="batches per evaluation (default 20)")
    t.add_argument("--sample-interval", type=_positive_int, default=500)
    t.add_argument("--checkpoint-interval", type=int, default=0,
                   help="also save every N steps (default 0: at the end and on Ctrl+C)")
    t.add_argument("--probe", default=None, help="prompt for periodic samples")
    t.add_argument("--seed", type=int, default=1337)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    t.add_argument("--threads", type=_non_negative_int, default=0,
                   help="torch CPU threads (default 0: one per idle core, i.e. the physical "
                        "cores minus the load average, at least 1)")
    t.add_argument("--compile", action="store_true", help="use torch.compile when it works")
    t.add_argument("--grad-accum", type=_positive_int, default=1,
                   help="split each step's batch into K forward/backward passes per process "
                        "(same result, less memory; the batch stays the global batch)")
    t.add_argument("--amp", default="auto", choices=("auto", "on", "off"),
                   help="bf16 autocast (auto: on for CPUs with native bf16, off on GPUs)")
    t.add_argument("--dist-timeout", type=_positive_int, default=600,
                   help="under torchrun: seconds a process waits for the others (default 600)")
    t.add_argument("--resume", default=None, type=_checkpoint_arg,
                   help="continue training this checkpoint (a file or a shipped model's name) "
                        "up to --steps in all, with its optimizer state when the "
                        "<checkpoint>.optim.safetensors beside it belongs to it")
    t.add_argument("--lr-schedule", default="continue", choices=("continue", "restart"),
                   help="with --resume: continue = the learning rate carries on down the saved "
                        "run's cosine from where it stopped (default; no jump back up); "
                        "restart = warm-up and cosine anew over the steps left")
    t.add_argument("--no-optimizer-state", action="store_true",
                   help="do not write <out>.optim.safetensors (AdamW's moments and the batch "
                        "order, only needed to --resume exactly; about twice the model's size)")
    t.add_argument("--quiet", action="store_true", help="no progress bar or samples")
    t.add_argument("--tokenizer", default="char",
                   help="char (one token per character, default) or bpe:VOCAB (a byte-level BPE "
                        "with VOCAB tokens, learned from the corpus first)")

    p = sub.add_parser("prepare", help="encode a large text file into token files for train")
    p.add_argument("--corpus", required=True, help="a UTF-8 text file")
    p.add_argument("--tokenizer", default="char", help="char (one token per character)")
    p.add_argument("--out", required=True, help="folder for train.bin, val.bin and the tokenizer")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the text kept for validation, from its end (default 0.1)")

    g = sub.add_parser("generate", help="write text with a trained model (an encoder-decoder "
                                         "translates the prompt; an encoder fills its [MASK]s)")
    g.add_argument("--checkpoint", required=True, type=_checkpoint_arg, help=CHECKPOINT_HELP)
    g.add_argument("--prompt", default="\n",
                   help="the text to continue (encoder-decoder: the source; encoder: text with "
                        "[MASK] where a character is hidden)")
    g.add_argument("--tokens", type=_positive_int, default=200)
    g.add_argument("--device", default="cpu")
    _sampling_args(g)
    _ablation_args(g)

    i = sub.add_parser("inspect", help="next-token distribution and attention for a prompt")
    i.add_argument("--checkpoint", required=True, type=_checkpoint_arg, help=CHECKPOINT_HELP)
    i.add_argument("--prompt", required=True,
                   help="the prompt (encoder-decoder: the source; encoder: text with [MASK])")
    i.add_argument("--target", default=None,
                   help="encoder-decoder: the target so far (default: the model's translation)")
    i.add_argument("--top", type=_positive_int, default=10, help="how many candidates to list")
    i.add_argument("--json", action="store_true", help="print JSON (default: a readable summary)")
    i.add_argument("--device", default="cpu")
    i.add_argument("--rank-heads", action="store_true",
                   help="also rank every head by how much switching it off alone changes the "
                        "log-probability of the most likely next token")
    _sampling_args(i)
    _ablation_args(i)

    e = sub.add_parser("eval", help="loss of a checkpoint on a corpus's validation split, per "
                         "token and per character (encoder-decoder: exact match of held-out "
                         "pairs; encoder: masked-token accuracy)")
    e.add_argument("--checkpoint", required=True, type=_checkpoint_arg, help=CHECKPOINT_HELP)
    e.add_argument("--corpus", required=True, type=_corpus_arg,
                   help=CORPUS_HELP + " (encoder-decoder: pairs as for train)")
    e.add_argument("--split", default="val", choices=("train", "val"))
    e.add_argument("--val-fraction", type=float, default=0.1)
    e.add_argument("--batch", type=_positive_int, default=32)
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", action="store_true")

    x = sub.add_parser("export", help="save a model as a Hugging Face GPT-2 folder")
    x.add_argument("--checkpoint", required=True, type=_checkpoint_arg, help=CHECKPOINT_HELP)
    x.add_argument("--hf-folder", required=True,
                   help="folder to write (config.json, model.safetensors, tokenizer files)")
    return parser


# -- commands ----------------------------------------------------------------------------------
def cmd_train(a: argparse.Namespace) -> int:
    import torch

    from . import distributed
    from .devices import resolve_device, spare_cpu_threads

    torch.set_num_threads(a.threads or spare_cpu_threads())
    if not a.out.endswith(".safetensors"):
        raise CLIError(f"--out {a.out!r} must end in .safetensors")
    resolve_device(a.device)  # an unavailable device is refused before any work starts
    if a.arch != "decoder" or a.enc_layers or a.separate_embeddings:
        return _train_encoder_kind(a)
    ctx, device = distributed.start(a.device, a.dist_timeout)  # torchrun: join the other ranks
    control = TrainControl()
    try:
        with distributed.stop_on_sigterm(control, ctx):
            try:
                return _train(a, ctx, device, control)
            except Exception as e:
                if not (ctx.is_distributed and distributed.is_exchange_error(e)):
                    raise
                # printed here, while a SIGTERM from torchrun cannot cut it short
                print(f"error: {distributed.peer_failure(ctx, e)}", file=sys.stderr)
                return EXIT_BAD_INPUT
    finally:
        distributed.shutdown(ctx)


def _train(a: argparse.Namespace, ctx, device, control) -> int:
    import torch

    from .checkpoints import load_checkpoint
    from .config import ModelConfig, TrainConfig
    from .corpora import load_corpus
    from .train_gpt import train_gpt

    resumed = None
    if a.resume:
        if a.tokenizer != "char":
            raise CLIError("--tokenizer cannot be combined with --resume: a resumed model keeps "
                           "its own tokenizer")
        resumed = load_checkpoint(a.resume, device="cpu")
        if resumed.config.kind != "decoder":
            raise CLIError(f"--resume {a.resume}: the checkpoint is an {resumed.config.kind}; "
                           "resuming works for decoder models only, train it anew with --arch "
                           f"{resumed.config.kind}")
        _refuse_shape_flags(a, resumed.config)
    _apply_recipe_defaults(a)
    _apply_shape_defaults(a)
    block = resumed.config.block_size if resumed else a.block
    tokenizer = resumed.tokenizer if resumed else _train_tokenizer(a.tokenizer, a.corpus)
    corpus = load_corpus(a.corpus, block_size=block, tokenizer=tokenizer)
    model_cfg = None
    if not resumed:
        model_cfg = ModelConfig(
            vocab_size=corpus.tokenizer.vocab_size, block_size=a.block, n_layer=a.layers,
            n_head=a.heads, n_embd=a.embd, n_ffn=a.ffn, pos_kind=a.pos, norm=a.norm,
            dropout=a.dropout, bias=not a.no_bias, tie_weights=not a.untied)
    warmup = a.warmup if a.warmup is not None else max(1, round(a.steps * a.warmup_fraction))
    train_cfg = TrainConfig(
        steps=a.steps, batch_size=a.batch, lr=a.lr,
        min_lr=a.min_lr if a.min_lr is not None else a.lr / 10, warmup_steps=warmup,
        weight_decay=a.weight_decay, grad_clip=a.grad_clip, eval_interval=a.eval_interval,
        eval_iters=a.eval_iters, sample_interval=a.sample_interval,
        capture_interval=max(a.steps, 1), checkpoint_interval=a.checkpoint_interval,
        probe_prompt=a.probe or corpus.default_probe_prompt(min(16, block)), seed=a.seed,
        device=str(device) if ctx.is_distributed else a.device, compile=a.compile,
        grad_accum=a.grad_accum, amp=a.amp)
    cb = ProgressCallbacks(train_cfg.steps, quiet=a.quiet or not ctx.is_main,
                           batch=train_cfg.batch_size, threads=torch.get_num_threads())
    try:
        result = train_gpt(corpus, model_cfg, train_cfg, a.out, callbacks=cb,
                           resume_from=a.resume if resumed else None, dist=ctx,
                           control=control, lr_schedule=a.lr_schedule,
                           save_optimizer=not a.no_optimizer_state)
    except KeyboardInterrupt:  # train_gpt saves on stop; a second ^C lands here
        cb.close()
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cb.close()
    if not ctx.is_main:
        return 0 if result.ok else EXIT_DIVERGED
    if not result.ok:
        print(f"error: {result.reason}", file=sys.stderr)
        return EXIT_DIVERGED
    val = f"{result.val_loss:.4f}" if result.val_loss is not None else "n/a"
    print(f"done: step {result.step}, train loss {result.train_loss:.4f}, val loss {val}, "
          f"saved {a.out}")
    return 0


def _train_encoder_kind(a: argparse.Namespace) -> int:
    """``train --arch encoder-decoder|encoder``."""
    from .config import ModelConfig, TrainConfig
    from .corpora import load_corpus
    from .pairs import load_pairs
    from .train_encoders import encoder_tokenizer, train_encoder, train_encoder_decoder

    if a.arch == "decoder":
        raise CLIError("--enc-layers and --separate-embeddings need --arch encoder-decoder")
    if a.resume:
        raise CLIError(f"--resume works for decoder models only; train an {a.arch} anew")
    if a.tokenizer != "char":
        raise CLIError(f"--tokenizer {a.tokenizer} is for decoder models; an {a.arch} uses one "
                       "token per character")
    if a.arch == "encoder" and (a.enc_layers or a.separate_embeddings):
        raise CLIError("--enc-layers and --separate-embeddings need --arch encoder-decoder "
                       "(an encoder has one stack: --layers)")
    _apply_recipe_defaults(a)
    _apply_shape_defaults(a)
    model_cfg = ModelConfig(
        kind=a.arch, vocab_size=1, block_size=a.block, n_layer=a.layers, n_head=a.heads,
        n_embd=a.embd, n_ffn=a.ffn, pos_kind=a.pos, norm=a.norm, dropout=a.dropout,
        bias=not a.no_bias, tie_weights=not a.untied, n_enc_layer=a.enc_layers,
        shared_embeddings=not a.separate_embeddings, pad_id=0, bos_id=0, eos_id=0, mask_id=0)
    warmup = a.warmup if a.warmup is not None else max(1, round(a.steps * a.warmup_fraction))
    train_cfg = TrainConfig(
        steps=a.steps, batch_size=a.batch, lr=a.lr,
        min_lr=a.min_lr if a.min_lr is not None else a.lr / 10, warmup_steps=warmup,
        weight_decay=a.weight_decay, grad_clip=a.grad_clip, eval_interval=a.eval_interval,
        eval_iters=a.eval_iters, sample_interval=a.sample_interval,
        capture_interval=max(a.steps, 1), checkpoint_interval=a.checkpoint_interval,
        seed=a.seed, device=a.device, compile=a.compile)
    cb = ProgressCallbacks(train_cfg.steps, quiet=a.quiet)
    try:
        if a.arch == "encoder-decoder":
            # the pairs do not depend on --seed: eval finds the same held-out pairs
            pairs = load_pairs(a.corpus, block_size=a.block)
            cb.on_message(pairs.describe())
            result = train_encoder_decoder(pairs, model_cfg, train_cfg, a.out, callbacks=cb)
        else:
            plain = load_corpus(a.corpus, block_size=a.block)
            corpus = load_corpus(a.corpus, block_size=a.block,
                                 tokenizer=encoder_tokenizer(plain.text))
            corpus.task = plain.task
            result = train_encoder(corpus, model_cfg, train_cfg, a.out, callbacks=cb)
    except KeyboardInterrupt:
        cb.close()
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cb.close()
    if not result.ok:
        print(f"error: {result.reason}", file=sys.stderr)
        return EXIT_DIVERGED
    from .checkpoints import read_metadata

    summary = read_metadata(a.out)["summary"]
    score = ""
    if "exact_match" in summary:
        score = f", held-out exact match {summary['exact_match']:.2%}"
    elif "masked_accuracy" in summary:
        score = f", masked-token accuracy {summary['masked_accuracy']:.2%}"
    val = f"{result.val_loss:.4f}" if result.val_loss is not None else "n/a"
    print(f"done: step {result.step}, train loss {result.train_loss:.4f}, val loss {val}"
          f"{score}, saved {a.out}")
    return 0


def _train_tokenizer(spec: str, corpus: str):
    """None for ``char`` (the corpus makes its own); a BPE learned from the text for ``bpe:N``."""
    if spec == "char":
        return None
    kind, _, size = spec.partition(":")
    if kind != "bpe" or not size.isdigit():
        raise CLIError(f"--tokenizer {spec!r} must be 'char' or 'bpe:VOCAB' (e.g. bpe:2000)")
    if corpus.startswith("task:"):
        raise CLIError("--tokenizer bpe:VOCAB needs a text corpus; the synthetic tasks use "
                       "their own characters")
    from .bpe_tokenizer import BPETokenizer
    from .corpora import read_text_file

    return BPETokenizer.train(read_text_file(corpus), int(size))


def cmd_export(a: argparse.Namespace) -> int:
    from .adapters.hf_gpt2 import save_hf_folder
    from .loading import open_model

    ck = open_model(a.checkpoint)
    folder = save_hf_folder(ck.model, ck.tokenizer, a.hf_folder)
    print(f"saved {folder} (config.json, model.safetensors, tokenizer.json); "
          "transformers.GPT2LMHeadModel.from_pretrained opens it")
    return 0


# Defaults the user did not override. Text: nanoGPT's CPU recipe. Synthetic tasks: the app's
# "tiny" preset (2 layers, the fewest that can grow an induction head; width 64, block 32,
# batch 64) with rotary positions, which make "look back n tokens" heads cheap to learn.
# Measured on the copy task (README; tests/model/test_cli_training.py runs it): 1,000 steps
# copy reliably (seeds 1337, 1, 2); 600 steps did for seed 1337 only, batch 32 not in 1,000
# steps, and with a warm-up of 5 % instead of a sixth seed 1337 copied 1 string in 20 after
# 600 steps. The former task default (4 layers × 128, block 64, batch 32) stayed at chance
# loss after 300 steps.
TEXT_RECIPE = {"pos": "learned", "lr": 1e-3, "batch": 12, "layers": 4, "embd": 128, "block": 64,
               "warmup_fraction": 0.05, "steps": 2000}
TASK_RECIPE = {"pos": "rotary", "lr": 3e-3, "batch": 64, "layers": 2, "embd": 64, "block": 32,
               "warmup_fraction": 1 / 6, "steps": 2000}
# Encoder-decoder: learned positions (cross-attention has no rotation, so the encoder's output
# must carry absolute positions for a target position to find its source position) and large
# batches of short pairs. Measured (model/assets/models/README.md): 2 + 2 layers, width 64,
# 600 steps learn task:reverse to 100 % held-out exact match in under 3 minutes of one loaded
# core; a block of 64 holds every task's pairs.
SEQ2SEQ_RECIPE = {"pos": "learned", "lr": 3e-3, "batch": 64, "layers": 2, "embd": 64,
                  "block": 64, "warmup_fraction": 0.05, "steps": 600}
ENCODER_RECIPE = {"pos": "learned", "lr": 1e-3, "batch": 32, "layers": 4, "embd": 128,
                  "block": 64, "warmup_fraction": 0.05, "steps": 2000}


def _apply_recipe_defaults(a: argparse.Namespace) -> None:
    arch = getattr(a, "arch", "decoder")
    if arch == "encoder-decoder":
        recipe = SEQ2SEQ_RECIPE
    elif arch == "encoder":
        recipe = ENCODER_RECIPE
    else:
        recipe = TASK_RECIPE if a.corpus.startswith("task:") else TEXT_RECIPE
    for key, value in recipe.items():
        if getattr(a, key, None) is None:
            setattr(a, key, value)


# The model's shape: None in the parser, so that a flag given with --resume can be told from a
# default (the shape of a resumed model comes from its file).
SHAPE_DEFAULTS = {"layers": 4, "heads": 4, "embd": 128, "ffn": 0, "block": 64, "norm": "pre",
                  "dropout": 0.0}
# flag -> (attribute, ModelConfig field, how the flag's value reads as that field)
_SHAPE_FLAGS = {
    "--layers": ("layers", "n_layer", None), "--heads": ("heads", "n_head", None),
    "--embd": ("embd", "n_embd", None), "--block": ("block", "block_size", None),
    "--pos": ("pos", "pos_kind", None), "--norm": ("norm", "norm", None),
    "--dropout": ("dropout", "dropout", None),
    "--no-bias": ("no_bias", "bias", lambda v: not v),
    "--untied": ("untied", "tie_weights", lambda v: not v),
}


def _apply_shape_defaults(a: argparse.Namespace) -> None:
    for key, value in SHAPE_DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, value)


def _refuse_shape_flags(a: argparse.Namespace, config) -> None:
    """With --resume the shape comes from the checkpoint: a shape flag that says otherwise
    would be silently ignored, so it is refused, naming each conflict."""
    conflicts = []
    for flag, (attr, field, to_field) in _SHAPE_FLAGS.items():
        given = getattr(a, attr)
        if given is None or given is False:  # not given (store_true flags default to False)
            continue
        want = to_field(given) if to_field else given
        have = getattr(config, field)
        if want != have:
            shown = flag if isinstance(given, bool) else f"{flag} {given}"
            conflicts.append(f"{shown} (the checkpoint has {field}={have})")
    ffn = a.ffn
    if ffn is not None and (ffn or 4 * config.n_embd) != config.n_ffn:
        conflicts.append(f"--ffn {ffn} (the checkpoint has n_ffn={config.n_ffn})")
    if conflicts:
        raise CLIError(f"--resume {a.resume}: the model's shape comes from the checkpoint, but "
                       f"{'; '.join(conflicts)}; leave these flags out to continue it")


class ProgressCallbacks(Callbacks):
    """tqdm bar with loss and tokens/s; evaluations and samples printed above it."""

    def __init__(self, total: int, quiet: bool = False, batch: int | None = None,
                 threads: int | None = None):
        self.quiet = quiet
        self.total = total
        self.batch = batch  # the global batch (all processes and accumulation steps)
        self.threads = threads
        self.bar = None  # made when training starts: a refusal before that prints one line only
        self._last = 0

    def on_start(self, trainer):
        from tqdm import tqdm

        if not self.quiet and self.bar is None:
            self.bar = tqdm(total=self.total, unit="step", dynamic_ncols=True)

    def on_step(self, m):
        if self.bar is not None:
            self.bar.update(m.step - self._last)
            self._last = m.step
            extra = {} if self.batch is None else {"batch": self.batch}
            if self.threads is not None:
                extra["threads"] = self.threads
            self.bar.set_postfix(loss=f"{m.loss:.4f}", tok_s=f"{m.tokens_per_s:,.0f}",
                                 lr=f"{m.lr:.2e}", **extra)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif not self.quiet:
            print(text)

    def on_eval(self, m):
        val = "n/a" if m.val_loss is None else f"{m.val_loss:.4f}"
        self._write(f"step {m.step}: train loss {m.train_loss:.4f}, val loss {val}")

    def on_sample(self, step, text):
        self._write(f"--- sample at step {step} ---\n{text}\n---")

    def on_message(self, text):
        self._write(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_prepare(a: argparse.Namespace) -> int:
    from .token_files import prepare

    t0 = time.perf_counter()
    meta = prepare(a.corpus, a.out, tokenizer=a.tokenizer, val_fraction=a.val_fraction)
    print(f"wrote {meta['train_tokens']:,} training and {meta['val_tokens']:,} validation tokens "
          f"({meta['dtype']}, {meta['vocab_size']} distinct characters) to {a.out} in "
          f"{time.perf_counter() - t0:.1f} s; train with --corpus {a.out}")
    return 0


def _sample_config(a: argparse.Namespace):
    from .config import SampleConfig
    return SampleConfig(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, seed=a.seed)


def cmd_generate(a: argparse.Namespace) -> int:
    from .loading import open_model
    from .stepper import generate_text

    sample = _sample_config(a)
    ck = open_model(a.checkpoint, device=a.device)
    if ck.config.kind != "decoder":
        if a.ablate:
            raise CLIError("--ablate works for decoder models only")
        return _generate_encoder_kind(ck, a.prompt)
    ck.model.set_ablation(_ablation(a, ck.config))
    ck.tokenizer.encode(a.prompt)  # unknown characters: one clear error before any work
    out = sys.stdout
    out.write(a.prompt)
    out.flush()
    last = [a.prompt[-1:]]

    def stream(piece: str) -> None:  # text appears as it is drawn, not after the last token
        out.write(piece)
        out.flush()
        last[0] = piece

    try:
        generate_text(ck.model, ck.tokenizer, a.prompt, a.tokens, sample, on_text=stream)
    finally:  # also after Ctrl+C: end the line that was streamed
        if not last[0].endswith("\n"):
            out.write("\n")
            out.flush()
    return 0


def _with_masks(text: str) -> str:
    """``[MASK]`` written in a prompt as the encoder's mask token."""
    from .tokenizer import MASK_CHAR, MASK_TEXT
    return text.replace(MASK_TEXT, MASK_CHAR)


def _generate_encoder_kind(ck, prompt: str) -> int:
    """An encoder-decoder's greedy translation of the prompt; an encoder's fill of [MASK]."""
    if ck.config.kind == "encoder-decoder":
        from .train_encoders import translate
        try:
            target = translate(ck.model, ck.tokenizer, [prompt])[0]
        except ValueError as e:  # a source longer than the block
            raise CLIError(str(e)) from None
        print(target)
        return 0
    from .train_encoders import fill_masks
    text = _with_masks(prompt)
    try:
        filled, _ = fill_masks(ck.model, ck.tokenizer, text)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(filled)
    return 0


def _as_list(t) -> list:
    return t.float().numpy().astype(float).round(6).tolist()


def _inspect_encoder_kind(ck, prompt: str, target: str | None, top: int) -> dict:
    """``inspect`` of an encoder-decoder (source, target, three attention families) or an
    encoder (the text, each [MASK]'s candidates, its bidirectional attention)."""
    import torch

    from .capture import capture
    from .config import CaptureSpec

    cfg, tok, model = ck.config, ck.tokenizer, ck.model
    spec = CaptureSpec(attention=True, scores=False, residual=False, ffn=False,
                       logit_lens=False, embeddings=False, sublayers=False)
    out: dict = {"prompt": prompt, "config": cfg.to_dict(), "summary": ck.summary}

    def candidates(p) -> list[dict]:
        probs, ids = p.topk(min(top, cfg.vocab_size))
        return [{"token": tok.token_str(int(i)), "piece": tok.token_pieces([int(i)])[0],
                 "id": int(i), "prob": float(q)} for q, i in zip(probs, ids, strict=True)]

    if cfg.kind == "encoder-decoder":
        from .train_encoders import translate
        src_ids = tok.encode(prompt) + [cfg.eos_id]
        if len(src_ids) > cfg.block_size:
            raise CLIError(f"the source has {len(src_ids) - 1} tokens; with its end token "
                           f"that is more than the model's block size {cfg.block_size}")
        if target is None:
            target = translate(model, tok, [prompt])[0]
        tgt_ids = [cfg.bos_id] + tok.encode(target)
        if len(tgt_ids) > cfg.block_size:
            raise CLIError(f"the target has {len(tgt_ids) - 1} tokens; with its start token "
                           f"that is more than the model's block size {cfg.block_size}")
        with torch.no_grad(), capture(model, spec) as rec:
            logits, _ = model(torch.tensor([src_ids]), torch.tensor([tgt_ids]))
        probs = torch.softmax(logits[0, -1].float(), -1)
        out.update({
            "target": target,
            "source_pieces": tok.token_pieces(src_ids),
            "target_pieces": tok.token_pieces(tgt_ids),  # the decoder's input: bos + target
            "source_ids": src_ids, "target_ids": tgt_ids,
            "next_token": candidates(probs),
            "entropy": float(-(probs * probs.clamp_min(1e-30).log()).sum()),
            # [layer][head][target][target], [layer][head][source][source],
            # [layer][head][target][source]
            "attention": _as_list(torch.stack(rec.attn_probs)[:, 0]),
            "encoder_attention": _as_list(torch.stack(rec.enc_attn_probs)[:, 0]),
            "cross_attention": _as_list(torch.stack(rec.cross_attn_probs)[:, 0]),
        })
        return out
    text = _with_masks(prompt)
    ids = tok.encode(text)
    if len(ids) > cfg.block_size:
        raise CLIError(f"the text has {len(ids)} tokens, more than the model's block size "
                       f"{cfg.block_size}")
    with torch.no_grad(), capture(model, spec) as rec:
        logits, _ = model(torch.tensor([ids]), all_logits=True)
    probs = torch.softmax(logits[0].float(), -1)
    out.update({
        "pieces": tok.token_pieces(ids), "ids": ids,
        "masks": [{"position": p, "candidates": candidates(probs[p])}
                  for p, i in enumerate(ids) if i == cfg.mask_id],
        "encoder_attention": _as_list(torch.stack(rec.attn_probs)[:, 0]),  # [L][H][T][T]
    })
    return out


def inspect_prompt(checkpoint: str, prompt: str, sample, top: int = 10,
                   device: str = "cpu", ablation=None, rank_heads: bool = False,
                   target: str | None = None) -> dict:
    """Everything ``inspect --json`` prints, as a dict (also used by tests and notebooks).
    ``ablation``: a :class:`model.ablation.Ablation` (heads switched off); ``target``: an
    encoder-decoder's target so far."""
    from .ablation import NO_ABLATION
    from .config import CaptureSpec
    from .loading import open_model
    from .stepper import Stepper

    ck = open_model(checkpoint, device=device)
    if ck.config.kind != "decoder":
        if ablation is not None or rank_heads:
            raise CLIError("--ablate and --rank-heads work for decoder models only")
        return _inspect_encoder_kind(ck, prompt, target, top)
    if target is not None:
        raise CLIError("--target is for encoder-decoder models; this one is a decoder")
    ablation = ablation if ablation is not None else NO_ABLATION
    ablation.check(ck.config)
    spec = CaptureSpec(attention=True, scores=False, residual=False, ffn=False,
                       logit_lens=True, embeddings=False, sublayers=False, norms=False)
    stepper = Stepper(ck.model, ck.tokenizer, sample=sample, capture=spec, lens_k=1)
    stepper.set_ablation(ablation)
    r = stepper.set_prompt(prompt)
    ids, probs = r.dist.top(min(top, r.dist.n_kept))
    tok = ck.tokenizer
    out = {
        "prompt": prompt,
        "tokens": list(r.tokens),
        "pieces": list(r.pieces),  # the tokens as labels show them (whitespace made visible)
        "ids": [int(i) for i in r.ids],
        "cropped": int(r.cropped),
        "settings": dataclasses.asdict(sample),
        "next_token": [{"token": tok.token_str(i), "piece": piece, "id": int(i), "prob": float(p)}
                       for i, piece, p in zip(ids, tok.token_pieces(ids.tolist()), probs,
                                              strict=True)],
        "entropy": float(r.dist.entropy),
        "attention": r.attention.astype(float).round(6).tolist(),
        "logit_lens": [[tok.token_str(int(x)) for x in layer[:, 0]] for layer in r.lens_ids],
        "config": ck.config.to_dict(),
        "summary": ck.summary,
    }
    if r.note:
        out["note"] = r.note
    if ablation:
        intact = r.intact_dist()
        out["ablation"] = {"heads": [list(h) for h in ablation.sorted()], "mode": ablation.mode}
        # the same candidates with every head on: the change each ablated head made
        out["next_token_intact"] = [{"piece": c["piece"], "id": c["id"],
                                     "prob": float(intact.probs[c["id"]])}
                                    for c in out["next_token"]]
    if rank_heads:
        from .head_effects import head_effects

        target = int(ids[0])
        eff = head_effects(ck.model, r.ids.tolist(), target, ablation.mode)
        out["head_effects"] = {"token": tok.token_str(target), "mode": eff.mode,
                               "logprob": eff.base_logprob,
                               "ranking": [{"layer": li, "head": hi, "change": d}
                                           for li, hi, d in eff.ranking()]}
    return out


def cmd_inspect(a: argparse.Namespace) -> int:
    from .ablation import Ablation

    data = inspect_prompt(a.checkpoint, a.prompt, _sample_config(a), a.top, a.device,
                          Ablation.parse(a.ablate, a.ablation) if a.ablate else None,
                          a.rank_heads, a.target)
    if a.json:
        json.dump(data, sys.stdout)
        sys.stdout.write("\n")
        return 0
    cfg = data["config"]
    if cfg["kind"] != "decoder":
        _print_encoder_kind(data)
        return 0
    print(f"model: {cfg['n_layer']} layers × {cfg['n_head']} heads, width {cfg['n_embd']}, "
          f"block {cfg['block_size']}, {cfg['pos_kind']} positions, {cfg['norm']}-norm")
    print("tokens:", " ".join(data["pieces"]))
    if data["cropped"]:
        print(f"(prompt cropped: the first {data['cropped']} tokens did not fit the block)")
    intact = data.get("next_token_intact")
    if intact:
        abl = data["ablation"]
        heads = ", ".join(f"{li}.{hi}" for li, hi in abl["heads"])
        print(f"ablated heads (layer.head): {heads}, {abl['mode']} ablation")
    print(f"next token (entropy {data['entropy']:.3f} nats):")
    for j, c in enumerate(data["next_token"]):
        bar = "█" * max(1, round(c["prob"] * 40))
        change = ""
        if intact:
            p0 = intact[j]["prob"]
            change = f"  (all heads on {p0:7.2%}, {100 * (c['prob'] - p0):+.2f} points)"
        print(f"  {c['piece']:>4} {c['prob']:7.2%} {bar}{change}")
    if "head_effects" in data:
        he = data["head_effects"]
        print(f"log p({he['token']!r}) with every head on is {he['logprob']:.3f}; switching one "
              f"head off alone ({he['mode']} ablation) changes it by:")
        for e in he["ranking"]:
            print(f"  head {e['layer']}.{e['head']}: {e['change']:+.4f}")
    print("strongest attention of the last token, per layer and head:")
    toks = data["pieces"]
    for li, layer in enumerate(data["attention"]):
        row = []
        for hi, head in enumerate(layer):
            last = head[-1]
            k = max(range(len(last)), key=last.__getitem__)
            row.append(f"h{hi}→{toks[k]}@{k} {last[k]:.2f}")
        print(f"  layer {li}: " + ", ".join(row))
    return 0


def _strongest(rows: list, labels: list[str]) -> str:
    """Per head of one layer, the key each query row attends to most."""
    heads = []
    for hi, head in enumerate(rows):
        keys = [labels[max(range(len(r)), key=r.__getitem__)] for r in head]
        heads.append(f"h{hi}: " + " ".join(keys))
    return "; ".join(heads)


def _print_encoder_kind(data: dict) -> None:
    cfg = data["config"]
    if cfg["kind"] == "encoder-decoder":
        print(f"model: encoder-decoder, {cfg['n_enc_layer']} encoder + {cfg['n_layer']} "
              f"decoder layers × {cfg['n_head']} heads, width {cfg['n_embd']}")
        print("source:", " ".join(data["source_pieces"]))
        print("target:", " ".join(data["target_pieces"]))
        print(f"next token (entropy {data['entropy']:.3f} nats):")
        for c in data["next_token"]:
            print(f"  {c['piece']:>4} {c['prob']:7.2%} {'█' * max(1, round(c['prob'] * 40))}")
        print("source token each target position attends to most, per cross-attention head:")
        for li, layer in enumerate(data["cross_attention"]):
            print(f"  layer {li}: {_strongest(layer, data['source_pieces'])}")
        return
    print(f"model: encoder, {cfg['n_layer']} layers × {cfg['n_head']} heads, width "
          f"{cfg['n_embd']}")
    print("tokens:", " ".join(data["pieces"]))
    if not data["masks"]:
        print("no [MASK] in the text: write [MASK] where the model should guess")
    for m in data["masks"]:
        cands = ", ".join(f"{c['piece']} {c['prob']:.1%}" for c in m["candidates"][:5])
        print(f"  [MASK] at {m['position']}: {cands}")


def _eval_encoder_kind(ck, a: argparse.Namespace) -> int:
    if ck.config.kind == "encoder-decoder":
        from .pairs import load_pairs
        from .train_encoders import seq2seq_accuracy

        pairs = load_pairs(a.corpus, tokenizer=ck.tokenizer, val_fraction=a.val_fraction,
                           block_size=ck.config.block_size)
        t0 = time.perf_counter()
        chosen = pairs.pairs(a.split)
        acc, misses = seq2seq_accuracy(ck.model, ck.tokenizer, chosen, a.batch)
        result = {"checkpoint": a.checkpoint, "corpus": pairs.name, "split": a.split,
                  "exact_match": acc, "pairs": len(chosen), "correct": len(chosen) - len(misses),
                  "misses": [list(m) for m in misses[:10]],
                  "seconds": round(time.perf_counter() - t0, 2)}
        if a.json:
            print(json.dumps(result, ensure_ascii=False))
            return 0
        held = "held-out" if a.split == "val" else "training"
        print(f"{a.split} exact match {acc:.2%} ({len(chosen) - len(misses):,} of "
              f"{len(chosen):,} {held} pairs of {pairs.name})")
        for s, t, p in misses[:5]:
            print(f"  {s} → {p}  (want {t})")
        return 0
    from .corpora import load_corpus
    from .train_encoders import masked_accuracy

    corpus = load_corpus(a.corpus, block_size=ck.config.block_size, tokenizer=ck.tokenizer,
                         val_fraction=a.val_fraction)
    t0 = time.perf_counter()
    acc, n = masked_accuracy(ck.model, corpus, a.split, batch_size=a.batch)
    result = {"checkpoint": a.checkpoint, "corpus": corpus.name, "split": a.split,
              "masked_accuracy": acc, "masked_tokens": n,
              "seconds": round(time.perf_counter() - t0, 2)}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{a.split} masked-token accuracy {acc:.2%} over {n:,} [MASK] positions of "
              f"{corpus.name}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from .corpora import load_corpus
    from .loading import open_model
    from .train_gpt import evaluate_split, predicted_characters

    ck = open_model(a.checkpoint, device=a.device)
    if ck.config.kind != "decoder":
        return _eval_encoder_kind(ck, a)
    corpus = load_corpus(a.corpus, block_size=ck.config.block_size, tokenizer=ck.tokenizer,
                         val_fraction=a.val_fraction)
    t0 = time.perf_counter()
    loss, n_tokens = evaluate_split(ck.model, corpus, a.split, ck.config.block_size, a.batch)
    if not math.isfinite(loss):
        raise CLIError(f"{a.checkpoint}: the loss on {corpus.name} is {loss} (the model's output "
                       "is not a finite number)")
    n_chars = predicted_characters(ck.tokenizer, corpus.split(a.split))
    per_char = loss * n_tokens / n_chars if n_chars else None
    ppl = _perplexity(loss)
    result = {"checkpoint": a.checkpoint, "corpus": corpus.name, "split": a.split,
              "loss": loss, "perplexity": ppl if math.isfinite(ppl) else None,
              "tokens": n_tokens, "characters": n_chars, "loss_per_char": per_char,
              "seconds": round(time.perf_counter() - t0, 2)}
    if a.json:  # null perplexity: too large for a float (strict JSON has no Infinity)
        print(json.dumps(result))
    else:
        shown = f"{ppl:.2f}" if math.isfinite(ppl) else "inf: too large to show"
        per_char_text = f"{per_char:.4f}" if per_char is not None else "none (no characters)"
        print(f"{a.split} loss {loss:.4f} (perplexity {shown}) over {n_tokens:,} "
              f"tokens of {corpus.name}; {per_char_text} per character over {n_chars:,} "
              "characters")
    return 0


def _perplexity(loss: float) -> float:
    """exp(loss), or inf when that exceeds the largest float (loss above ~709.8)."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


COMMANDS = {"train": cmd_train, "prepare": cmd_prepare, "generate": cmd_generate,
            "inspect": cmd_inspect, "eval": cmd_eval, "export": cmd_export}


def main(argv: list[str] | None = None, prog: str = "python -m model") -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as e:  # a usage error (printed, one line) or --help: return its status
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl+C anywhere, start-up included (importing torch)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not complain
    about the closed pipe (the recipe of Python's signal documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass


def _run(args: argparse.Namespace) -> int:
    from . import speedups

    speedups.tune_malloc()  # large temporaries reuse heap pages instead of faulting them in anew
    from .checkpoints import CheckpointError
    from .config import ConfigError
    from .corpora import CorpusError
    from .devices import DeviceError
    from .distributed import DistributedError
    from .memory import MemoryLimitError
    from .stepper import NonFiniteLogitsError
    from .tokenizer import TokenizerError, UnknownCharactersError

    known = (CLIError, CheckpointError, ConfigError, CorpusError, DeviceError, DistributedError,
             TokenizerError, UnknownCharactersError, MemoryLimitError, NonFiniteLogitsError,
             FileNotFoundError, IsADirectoryError, PermissionError)
    try:
        return COMMANDS[args.command](args)
    except known as e:
        msg = str(e)
        if isinstance(e, OSError) and e.filename is not None:
            msg = f"{e.strerror}: {e.filename}"
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT


def cli() -> int:
    """The ``transformer-explorer-cli`` console script."""
    return main(prog="transformer-explorer-cli")


if __name__ == "__main__":
    raise SystemExit(main())
