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

    name: str  # decoder | encoder
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

    family: str  # decoder-only
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
    """The anatomy of :class:`model.transformer.GPT` built from ``config``."""
    C, V, F, H = config.n_embd, config.vocab_size, config.n_ffn, config.n_head
    hs, L, b = config.head_size, config.n_layer, 1 if config.bias else 0
    pre = config.norm == "pre"
    kind = config.pos_kind
    additive = kind in ("learned", "sinusoidal")
    vec = f"(T, {C})"
    inputs: list[Box] = [
        TokenEmbedding(key="embed.tok", title="Token embedding", name="Token embedding",
                       detail=f"E: {V}×{C}", shape=f"(T) → {vec}", n_params=V * C,
                       module="wte", recorded=(Recorded("tok_emb"),), vocab_size=V, width=C),
        Positions(key="embed.pos", title=POSITION_TITLES[kind], name=POSITION_TITLES[kind],
                  detail={"learned": f"table {config.block_size}×{C}",
                          "sinusoidal": "fixed sin/cos, no weights",
                          "rotary": "rotates q, k in attention",
                          "none": "order only via the mask"}[kind],
                  shape=f"(T) → {vec}" if additive else "—",
                  n_params=config.block_size * C if kind == "learned" else 0, module="pe",
                  recorded=(Recorded("pos_emb"),) if additive else (), pos_kind=kind,
                  has_table=kind == "learned", additive=additive),
    ]
    if additive:
        inputs.append(Add(key="embed.add", title="+", name="Embedding sum (token + position)",
                          detail="E[token] + PE[pos]", shape=vec,
                          recorded=(Recorded("residual", 0),)))

    def norm(key: str, name: str, placement: str, layer: int | None, module: str,
             index: int, extra: tuple[Recorded, ...] = ()) -> Norm:
        # index: this norm's place in StepResult.norm_stats (every norm in reading order)
        return Norm(key=key, title="LayerNorm" if layer is not None else "Final LayerNorm",
                    name=name, detail=f"γ, β: {C}" if b else f"γ: {C}", shape=vec, layer=layer,
                    n_params=(1 + b) * C, module=module,
                    recorded=(Recorded("norm_stats", index),) + extra, width=C,
                    placement=placement, has_bias=bool(b))

    layers = []
    for i in range(L):
        p, m = f"L{i}.", f"h.{i}."
        after = (Recorded("residual", i + 1),)  # the stream leaving the layer
        attn = Attention(key=p + "attn", title="Multi-head attention", name="Multi-head attention",
                         detail=f"{H} heads × {hs}", shape=f"{vec} → {vec}", layer=i,
                         n_params=3 * C * C + b * 3 * C + C * C + b * C, module=m + "attn",
                         recorded=(Recorded("attention", i), Recorded("scores", i),
                                   Recorded("attn_out", i)),
                         n_head=H, head_size=hs, causal=True)
        ffn = FeedForward(key=p + "ffn", title="Feed-forward", name="Feed-forward",
                          detail=f"{C} → {F} → {C}", shape=f"{vec} → {vec}", layer=i,
                          n_params=C * F + b * F + F * C + b * C, module=m + "mlp",
                          recorded=(Recorded("ffn", i), Recorded("mlp_out", i)), width=C,
                          hidden=F, activation="gelu")
        if pre:  # GPT-2: x + attn(LN1(x)), then x + ffn(LN2(x))
            boxes: tuple[Box, ...] = (
                norm(p + "ln_1", "LayerNorm 1 (before attention)", "pre", i, m + "ln_1", 2 * i),
                attn,
                Add(key=p + "add_1", title="+", name="Residual addition 1 (after attention)",
                    detail="residual", shape=vec, layer=i, skip=""),
                norm(p + "ln_2", "LayerNorm 2 (before FFN)", "pre", i, m + "ln_2", 2 * i + 1),
                ffn,
                Add(key=p + "add_2", title="+", name="Residual addition 2 (after FFN)",
                    detail="residual", shape=vec, layer=i, skip=p + "add_1", recorded=after))
        else:  # Vaswani et al.: LN1(x + attn(x)), then LN2(x + ffn(x))
            boxes = (
                attn,
                Add(key=p + "add_1", title="+", name="Residual addition 1 (after attention)",
                    detail="residual", shape=vec, layer=i, skip=""),
                norm(p + "ln_1", "LayerNorm 1 (after attention)", "post", i, m + "ln_1", 2 * i),
                ffn,
                Add(key=p + "add_2", title="+", name="Residual addition 2 (after FFN)",
                    detail="residual", shape=vec, layer=i, skip=p + "ln_1"),
                norm(p + "ln_2", "LayerNorm 2 (after FFN)", "post", i, m + "ln_2", 2 * i + 1,
                     after))
        layers.append(Layer(i, boxes))
    # post-norm layers already end in a norm; pre-norm needs one before the unembedding
    closing = (norm("final.ln", "Final LayerNorm", "final", None, "ln_f", 2 * L),) if pre else ()
    tied = config.tie_weights
    head = (
        Unembedding(key="final.unembed", title="Unembedding", name="Unembedding",
                    detail=f"Eᵀ (tied): {C}×{V}" if tied else f"W_U: {C}×{V}",
                    shape=f"{vec} → (T, {V})", n_params=0 if tied else C * V, module="lm_head",
                    recorded=(Recorded("logits"), Recorded("lens_ids"), Recorded("lens_probs")),
                    vocab_size=V, width=C, tied=tied),
        Softmax(key="final.softmax", title="Softmax ÷ τ", name="Softmax ÷ τ",
                detail="probabilities", shape=f"({V}) → ({V})", recorded=(Recorded("dist"),),
                vocab_size=V),
    )
    decoder = Stack(name="decoder", title="Decoder", norm=config.norm, causal=True, n_head=H,
                    inputs=tuple(inputs), layers=tuple(layers), closing=closing)
    return Anatomy(family="decoder-only", vocab_size=V, block_size=config.block_size, width=C,
                   stacks=(decoder,), head=head)


__all__ = [
    "Recorded", "Box", "TokenEmbedding", "Positions", "Add", "Norm", "Attention", "FeedForward",
    "Unembedding", "Softmax", "Layer", "Stack", "Anatomy", "describe",
]
