"""What a model is made of, in words and numbers, without torch: its anatomy.

:func:`describe` turns a :class:`~model.config.ModelConfig` into an :class:`Anatomy`: the boxes a
diagram draws, in reading order, each with its sizes, its parameter count (computed from the
config; a tied unembedding counts nothing of its own), the module of the network that holds its
weights, and the recorded tensors that show what it computed (fields of
:class:`model.step_result.StepResult`, filled by :mod:`model.capture` and the stepper).

The model is a list of :class:`Stack` objects (a decoder-only GPT has one, the decoder) followed
by the head (unembedding and softmax). A stack has its own inputs (embeddings), its layers and
its closing boxes (a final norm), so an encoder–decoder is two stacks whose decoder layers hold
an :class:`Attention` box that reads the encoder (``reads`` names that stack). Box keys are
unique across the whole anatomy.

Importing this module does not import torch: the GUI reads it in its own thread.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .config import ModelConfig

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which model.transformer uses

POSITION_TITLES = {"learned": "Learned positions", "sinusoidal": "Sinusoidal positions",
                   "rotary": "Rotary positions", "none": "No positions"}


@dataclass(frozen=True)
class Recorded:
    """A recorded tensor: the StepResult field that holds it and, for arrays with one entry per
    layer (or per norm), the index along the first axis (None: the whole field)."""

    field: str
    index: int | None = None


@dataclass(frozen=True, kw_only=True)
class Box:
    """One part of the model, drawn as one box. Subclasses add what their kind has."""

    kind: ClassVar[str] = "other"  # what the drawing and the detail views switch on

    key: str  # unique in the anatomy: "embed.tok", "L3.attn", "final.unembed", …
    title: str  # short, drawn inside the box ("LayerNorm")
    name: str  # distinct within its layer ("LayerNorm 1 (before attention)")
    detail: str  # second line in the box: its weights or what it does
    shape: str = ""  # input → output shapes, with T the number of tokens
    layer: int | None = None  # index in its stack; None outside the layers
    n_params: int = 0  # parameters of its own (a tied matrix counts at its first use)
    module: str = ""  # the network's submodule that holds its weights ("" when none)
    recorded: tuple[Recorded, ...] = ()  # what shows its values for the current context


@dataclass(frozen=True, kw_only=True)
class TokenEmbedding(Box):
    kind: ClassVar[str] = "tok_emb"
    vocab_size: int
    width: int


@dataclass(frozen=True, kw_only=True)
class Positions(Box):
    kind: ClassVar[str] = "pos"
    pos_kind: str  # learned | sinusoidal | rotary | none
    has_table: bool  # a trained table of one vector per position (learned)
    additive: bool  # added to the token embedding (else applied inside attention, or absent)


@dataclass(frozen=True, kw_only=True)
class Add(Box):
    kind: ClassVar[str] = "add"
    # a residual connection carries the output of box ``skip`` ("": the layer's input) past
    # the sublayer to this sum; None when the sum is not a residual (token + position)
    skip: str | None = None


@dataclass(frozen=True, kw_only=True)
class Norm(Box):
    kind: ClassVar[str] = "ln"
    width: int
    placement: str  # pre (before its sublayer) | post (after the residual sum) | final
    has_bias: bool
    eps: float = LAYER_NORM_EPS


@dataclass(frozen=True, kw_only=True)
class Attention(Box):
    kind: ClassVar[str] = "attn"
    n_head: int
    head_size: int
    causal: bool  # a query sees only the keys up to its own position
    reads: str | None = None  # cross-attention: the stack its keys and values come from


@dataclass(frozen=True, kw_only=True)
class FeedForward(Box):
    kind: ClassVar[str] = "ffn"
    width: int
    hidden: int
    activation: str  # gelu


@dataclass(frozen=True, kw_only=True)
class Unembedding(Box):
    kind: ClassVar[str] = "unembed"
    vocab_size: int
    width: int
    tied: bool  # the token embedding matrix, transposed


@dataclass(frozen=True, kw_only=True)
class Softmax(Box):
    kind: ClassVar[str] = "softmax"
    vocab_size: int


@dataclass(frozen=True)
class Layer:
    """One layer of a stack: its boxes in the order data flows through them."""

    index: int
    boxes: tuple[Box, ...]

    @property
    def n_params(self) -> int:
        return sum(b.n_params for b in self.boxes)


@dataclass(frozen=True)
class Stack:
    """A stack of identical layers between its inputs and its closing boxes."""

    name: str  # decoder | encoder (an encoder-decoder has both, the encoder first)
    title: str
    norm: str  # pre | post
    causal: bool
    n_head: int
    inputs: tuple[Box, ...]  # embeddings, in reading order
    layers: tuple[Layer, ...]
    closing: tuple[Box, ...]  # after the last layer (a pre-norm stack's final norm)

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    def boxes(self) -> Iterator[Box]:
        yield from self.inputs
        for layer in self.layers:
            yield from layer.boxes
        yield from self.closing


@dataclass(frozen=True)
class Anatomy:
    """A whole model: its stacks in reading order, then the head that turns vectors into
    next-token probabilities."""

    family: str  # decoder-only | encoder-decoder | encoder-only
    vocab_size: int
    block_size: int  # longest context
    width: int  # C, the size of every vector of the residual stream
    stacks: tuple[Stack, ...]
    head: tuple[Box, ...]

    def boxes(self) -> Iterator[Box]:
        """Every box in reading order."""
        for stack in self.stacks:
            yield from stack.boxes()
        yield from self.head

    def box(self, key: str) -> Box | None:
        return next((b for b in self.boxes() if b.key == key), None)

    @property
    def n_params(self) -> int:
        """Trainable parameters, a tied matrix counted once (what ``GPT.num_params()`` says)."""
        return sum(b.n_params for b in self.boxes())

    @property
    def n_layer(self) -> int:
        return sum(s.n_layer for s in self.stacks)


def describe(config: ModelConfig) -> Anatomy:
    """The anatomy of the model ``config`` builds (:func:`model.encoder_decoder.build_model`):
    one decoder stack (a GPT), one encoder stack (a BERT-style encoder), or an encoder stack and
    a decoder stack whose layers read the encoder's output (an encoder-decoder)."""
    C, V = config.n_embd, config.vocab_size
    kind = config.kind
    tied = config.tie_weights
    vec = f"(T, {C})"
    if kind == "encoder-decoder":
        # the encoder's values are the StepResult's encoder_* fields (model.seq2seq_stepper)
        encoder = _stack(config, "encoder", "E", "encoder.", "enc_ln_f", layers=config.n_enc_layer,
                         embed_key="enc.", embed_module="wte" if config.shared_embeddings
                         else "enc_wte", embed_params=True, recorded="encoder_")
        decoder = _stack(config, "decoder", "L", "h.", "ln_f", layers=config.n_layer,
                         embed_key="", embed_module="wte",
                         embed_params=not config.shared_embeddings, recorded="",
                         reads="encoder", table_params=False)
        stacks, family = (encoder, decoder), "encoder-decoder"
    elif kind == "encoder":
        stacks = (_stack(config, "encoder", "L", "h.", "ln_f", layers=config.n_layer,
                         embed_key="", embed_module="wte", embed_params=True, recorded=""),)
        family = "encoder-only"
    else:
        stacks = (_stack(config, "decoder", "L", "h.", "ln_f", layers=config.n_layer,
                         embed_key="", embed_module="wte", embed_params=True, recorded=""),)
        family = "decoder-only"
    what = "next-token probabilities" if kind != "encoder" else "probabilities of each token"
    head = (
        Unembedding(key="final.unembed", title="Unembedding", name="Unembedding",
                    detail=f"Eᵀ (tied): {C}×{V}" if tied else f"W_U: {C}×{V}",
                    shape=f"{vec} → (T, {V})", n_params=0 if tied else C * V, module="lm_head",
                    recorded=(Recorded("logits"), Recorded("lens_ids"), Recorded("lens_probs")),
                    vocab_size=V, width=C, tied=tied),
        Softmax(key="final.softmax", title="Softmax ÷ τ", name="Softmax ÷ τ",
                detail=what, shape=f"({V}) → ({V})",
                recorded=(Recorded("dist"),),
                vocab_size=V),
    )
    return Anatomy(family=family, vocab_size=V, block_size=config.block_size, width=C,
                   stacks=stacks, head=head)


def _stack(config: ModelConfig, name: str, key: str, module: str, final_module: str, *,
           layers: int, embed_key: str, embed_module: str, embed_params: bool,
           recorded: str | None, reads: str | None = None, table_params: bool = True) -> Stack:
    """One stack. ``key``/``module``: prefixes of its layers' box keys and submodules;
    ``embed_params``/``table_params``: whether its token embedding / position table count
    parameters (shared ones count at their first use); ``recorded``: the prefix of the
    StepResult fields that show its boxes ("" for the stack that makes the output,
    "encoder_" for an encoder-decoder's encoder; None: no fields); ``reads``: the stack its
    cross-attention reads (its boxes show the ``cross_*`` fields)."""
    C, V, F, H = config.n_embd, config.vocab_size, config.n_ffn, config.n_head
    hs, b = config.head_size, 1 if config.bias else 0
    pre = config.norm == "pre"
    causal = name == "decoder"
    pos = config.pos_kind
    additive = pos in ("learned", "sinusoidal")
    vec = f"(T, {C})"

    def rec(*items: Recorded) -> tuple[Recorded, ...]:
        if recorded is None:
            return ()
        return tuple(Recorded(recorded + r.field, r.index) for r in items)

    e = embed_key
    inputs: list[Box] = [
        TokenEmbedding(key=e + "embed.tok", title="Token embedding", name="Token embedding",
                       detail=f"E: {V}×{C}" + ("" if embed_params else " (shared)"),
                       shape=f"(T) → {vec}", n_params=V * C if embed_params else 0,
                       module=embed_module, recorded=rec(Recorded("tok_emb")), vocab_size=V,
                       width=C),
        Positions(key=e + "embed.pos", title=POSITION_TITLES[pos], name=POSITION_TITLES[pos],
                  detail={"learned": f"table {config.block_size}×{C}",
                          "sinusoidal": "fixed sin/cos, no weights",
                          "rotary": "rotates q, k in attention",
                          "none": "order only via the mask"}[pos],
                  shape=f"(T) → {vec}" if additive else "—",
                  n_params=config.block_size * C if pos == "learned" and table_params else 0,
                  module="pe", recorded=rec(Recorded("pos_emb")) if additive else (),
                  pos_kind=pos, has_table=pos == "learned", additive=additive),
    ]
    if additive:
        inputs.append(Add(key=e + "embed.add", title="+",
                          name="Embedding sum (token + position)", detail="E[token] + PE[pos]",
                          shape=vec, recorded=rec(Recorded("residual", 0))))
    eps = config.layer_norm_epsilon
    attn_params = 3 * C * C + b * 3 * C + C * C + b * C

    def norm(k: str, title: str, placement: str, layer: int | None, mod: str, index: int,
             extra: tuple[Recorded, ...] = ()) -> Norm:
        # index: this norm's place in StepResult.norm_stats (every norm in reading order)
        return Norm(key=k, title="LayerNorm" if layer is not None else "Final LayerNorm",
                    name=title, detail=f"γ, β: {C}" if b else f"γ: {C}", shape=vec, layer=layer,
                    n_params=(1 + b) * C, module=mod,
                    recorded=rec(Recorded("norm_stats", index), *extra), width=C,
                    placement=placement, has_bias=bool(b), eps=eps)

    def add(k: str, title: str, layer: int, skip: str, extra: tuple[Recorded, ...] = ()) -> Add:
        return Add(key=k, title="+", name=title, detail="residual", shape=vec, layer=layer,
                   skip=skip, recorded=rec(*extra))

    n_norms = 3 if reads else 2  # per layer
    built = []
    for i in range(layers):
        p, m = f"{key}{i}.", f"{module}{i}."
        after = (Recorded("residual", i + 1),)  # the stream leaving the layer
        title = "Masked multi-head attention" if causal and reads else "Multi-head attention"
        attn = Attention(key=p + "attn", title=title, name=title, detail=f"{H} heads × {hs}",
                         shape=f"{vec} → {vec}", layer=i, n_params=attn_params,
                         module=m + "attn", recorded=rec(Recorded("attention", i),
                                                         Recorded("scores", i),
                                                         Recorded("attn_out", i)),
                         n_head=H, head_size=hs, causal=causal)
        ffn = FeedForward(key=p + "ffn", title="Feed-forward", name="Feed-forward",
                          detail=f"{C} → {F} → {C}", shape=f"{vec} → {vec}", layer=i,
                          n_params=C * F + b * F + F * C + b * C, module=m + "mlp",
                          recorded=rec(Recorded("ffn", i), Recorded("mlp_out", i)), width=C,
                          hidden=F, activation=config.activation)
        sub: list[tuple[Box, str]] = [(attn, "attention")]
        if reads:
            sub.append((Attention(key=p + "cross", title="Cross-attention",
                                  name="Cross-attention (queries here, keys/values from the "
                                       f"{reads})",
                                  detail=f"{H} heads × {hs}", shape=f"{vec}, (S, {C}) → {vec}",
                                  layer=i, n_params=attn_params, module=m + "cross_attn",
                                  recorded=rec(Recorded("cross_attention", i),
                                               Recorded("cross_scores", i),
                                               Recorded("cross_out", i)),
                                  n_head=H, head_size=hs, causal=False, reads=reads),
                        "cross-attention"))
        sub.append((ffn, "FFN"))
        boxes: list[Box] = []
        skip = ""
        for j, (box, what) in enumerate(sub, start=1):
            last = j == len(sub)
            idx = n_norms * i + j - 1
            ln = f"ln_{j}"
            if pre:  # GPT-2: x + f(LN(x))
                boxes += [norm(p + ln, f"LayerNorm {j} (before {what})", "pre", i, m + ln, idx),
                          box, add(p + f"add_{j}", f"Residual addition {j} (after {what})", i,
                                   skip, after if last else ())]
                skip = p + f"add_{j}"
            else:  # Vaswani et al.: LN(x + f(x))
                boxes += [box, add(p + f"add_{j}", f"Residual addition {j} (after {what})", i,
                                   skip),
                          norm(p + ln, f"LayerNorm {j} (after {what})", "post", i, m + ln, idx,
                               after if last else ())]
                skip = p + ln
        built.append(Layer(i, tuple(boxes)))
    # post-norm layers already end in a norm; pre-norm needs one before the output
    closing = (norm(f"{e}final.ln", "Final LayerNorm", "final", None, final_module,
                    n_norms * layers),) if pre else ()
    return Stack(name=name, title=name.capitalize(), norm=config.norm, causal=causal,
                 n_head=H, inputs=tuple(inputs), layers=tuple(built), closing=closing)


__all__ = [
    "Recorded", "Box", "TokenEmbedding", "Positions", "Add", "Norm", "Attention", "FeedForward",
    "Unembedding", "Softmax", "Layer", "Stack", "Anatomy", "describe",
]
