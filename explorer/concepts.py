"""The concepts of the lecture, each with a paragraph, its formula and the panel that shows it.

Help → Concepts lists them (:mod:`explorer.concepts_browser`); its "Show it" button brings the
concept's panel, view and stage to the front (:func:`explorer.lesson_player.show_view`). Pure
data: no Qt. Formulas are HTML (Qt's rich text has no TeX).
"""
from __future__ import annotations

from dataclasses import dataclass

from explorer.lesson_file import ViewSpec


@dataclass(frozen=True)
class Concept:
    key: str
    title: str
    text: str  # a paragraph, HTML
    formula: str  # HTML
    show: ViewSpec
    where: str  # what to look at once the panel is in front
    # a shipped model of the kind this concept needs: "Show it" opens it first when the model
    # in the window is of another kind ("" = any model shows it)
    example: str = ""
    kind: str = ""  # the model kind the example is (model.config.MODEL_KINDS)


CONCEPTS: tuple[Concept, ...] = (
    Concept(
        "tokenization", "Tokenization",
        "The model never sees letters or words, only token ids: whole numbers from a fixed "
        "vocabulary. A character-level tokenizer (the shipped models) gives every character its "
        "own id; a BPE tokenizer (GPT-2) merges frequent pieces of words into one token. Each "
        "chip in the prompt strip is one token.",
        "text → (t<sub>0</sub>, t<sub>1</sub>, …, t<sub>T−1</sub>),&nbsp; "
        "t<sub>i</sub> ∈ {0, …, V−1}",
        ViewSpec("next token"),
        "The chips of the prompt strip: one per token; hover one for its id."),
    Concept(
        "embedding", "Input embedding",
        "Each token id picks one row of the embedding matrix E: a vector of C numbers the model "
        "learned. Tokens that behave alike end up with similar rows. This vector is where the "
        "token's journey through the layers starts.",
        "x<sub>i</sub> = E[t<sub>i</sub>],&nbsp; E ∈ ℝ<sup>V×C</sup>",
        ViewSpec("architecture", "embed.tok"),
        "Architecture → Token embedding: the vectors of the context's tokens."),
    Concept(
        "positional", "Positional encoding",
        "Attention by itself ignores order, so the position of each token is added to its "
        "embedding. The sinusoidal encoding gives every position a fixed pattern of waves of "
        "different wavelengths; a learned encoding is a trained table; rotary rotates queries "
        "and keys instead.",
        "PE[p, 2i] = sin(p / 10000<sup>2i/C</sup>),&nbsp; PE[p, 2i+1] = cos(p / "
        "10000<sup>2i/C</sup>),&nbsp; h<sub>0</sub> = E[t] + PE[p]",
        ViewSpec("positional encoding", "matrix"),
        "Positional encoding → Encoding table: one row per position, one column per dimension."),
    Concept(
        "qk", "Queries, keys and scores (QKᵀ)",
        "Each token makes a query (what am I looking for?) and a key (what do I offer?) from "
        "its vector. The score of query i and key j is their dot product: large when they "
        "match.",
        "Q = XW<sub>Q</sub>,&nbsp; K = XW<sub>K</sub>,&nbsp; S = QKᵀ",
        ViewSpec("attention", "head", 0, 0, "scores"),
        "Attention → stage Scores: rows are queries, columns are keys."),
    Concept(
        "scale", "Scaling by √d",
        "A dot product of d numbers grows with d. Dividing the scores by √d keeps them around "
        "1 whatever the head size, so the softmax that follows is not pushed into a corner "
        "where one key takes everything and gradients vanish.",
        "S = QKᵀ / √d<sub>head</sub>",
        ViewSpec("attention", "head", 0, 0, "scores"),
        "Attention → stage Scores: the scores are already divided by √d."),
    Concept(
        "mask", "Causal mask",
        "A language model predicts the next token, so a token may not look at later ones. The "
        "mask sets every score above the diagonal to −∞ before the softmax: their weights "
        "become exactly 0.",
        "S′<sub>ij</sub> = S<sub>ij</sub> if j ≤ i, −∞ if j &gt; i",
        ViewSpec("attention", "head", 0, 0, "masked"),
        "Attention → stage Masked scores: the hatched triangle is the future."),
    Concept(
        "softmax_attention", "Attention weights (softmax)",
        "The softmax turns each row of masked scores into weights that are positive and sum "
        "to 1: how much of each earlier token the query mixes in.",
        "A = softmax(QKᵀ / √d + M),&nbsp; A<sub>ij</sub> = e<sup>S′<sub>ij</sub></sup> / "
        "Σ<sub>k</sub> e<sup>S′<sub>ik</sub></sup>",
        ViewSpec("attention", "head", 0, 0, "probs"),
        "Attention → stage Softmax weights: each row sums to 1."),
    Concept(
        "values", "Mixing the values (×V)",
        "Each token also makes a value vector: what it passes on. The output of a head for "
        "query i is the weighted sum of the values, with the attention weights of row i.",
        "V = XW<sub>V</sub>,&nbsp; head = A·V = softmax(QKᵀ/√d + M)·V",
        ViewSpec("architecture", "L0.attn"),
        "Architecture → Multi-head attention: the layer's attention and its output."),
    Concept(
        "multihead", "Multi-head attention",
        "Several heads run side by side, each with its own W<sub>Q</sub>, W<sub>K</sub>, "
        "W<sub>V</sub> of size C/h: one may follow the previous token, another the start of the "
        "line. Their outputs are joined and projected back to C numbers.",
        "MHA(X) = [head<sub>1</sub>; …; head<sub>h</sub>] W<sub>O</sub>",
        ViewSpec("attention", "grid", 0, 0, "probs"),
        "Attention → All heads: every layer (rows) and head (columns) at once."),
    Concept(
        "ffn", "Feed-forward network",
        "After attention has moved information between tokens, every token is processed on "
        "its own by the same two-layer network: widen to 4C, a GELU, back to C. Most of the "
        "model's parameters are here.",
        "FFN(x) = W<sub>2</sub> · GELU(W<sub>1</sub>x + b<sub>1</sub>) + b<sub>2</sub>",
        ViewSpec("architecture", "L0.ffn"),
        "Architecture → Feed-forward: the hidden activations of every token."),
    Concept(
        "residual", "Residual connections",
        "Each sublayer adds its output to its input instead of replacing it: the residual "
        "stream carries the token's vector through the whole stack, and every layer writes a "
        "correction into it. It also lets gradients flow straight back in training.",
        "x ← x + Attn(LN(x)),&nbsp; x ← x + FFN(LN(x))",
        ViewSpec("architecture", "L0.add_1"),
        "Architecture → the + blocks: how large the stream is after each addition."),
    Concept(
        "layernorm", "Layer normalization",
        "Before each sublayer (pre-norm, as in GPT-2) the vector is centred and scaled to unit "
        "variance, then multiplied by learned γ and shifted by β. It keeps the numbers in a "
        "range the next layer expects.",
        "LN(x) = γ ⊙ (x − μ) / √(σ² + ε) + β",
        ViewSpec("architecture", "L0.ln_1"),
        "Architecture → LayerNorm: mean and spread before and after."),
    Concept(
        "stack", "The decoder stack",
        "A GPT is the same block (attention + feed-forward, with norms and residuals) repeated "
        "L times. Early layers tend to gather local information, later ones build the "
        "prediction.",
        "h<sub>ℓ+1</sub> = Block<sub>ℓ</sub>(h<sub>ℓ</sub>),&nbsp; ℓ = 0 … L−1",
        ViewSpec("architecture", ""),
        "Architecture: the diagram of the whole model, input at the bottom."),
    Concept(
        "logit_lens", "The logit lens",
        "Apply the final norm and the unembedding to the residual stream after every layer, "
        "not only the last: you see what the model would predict if it stopped there, and how "
        "the prediction forms layer by layer.",
        "lens<sub>ℓ</sub> = softmax(LN<sub>f</sub>(h<sub>ℓ</sub>) W<sub>U</sub>)",
        ViewSpec("architecture", "final.unembed"),
        "Architecture → Unembedding: the table of top tokens after each layer."),
    Concept(
        "logits", "Logits",
        "The last vector is multiplied by the unembedding matrix (here the transposed "
        "embedding): one score per token of the vocabulary, the logit. Only differences "
        "between logits matter.",
        "z = LN<sub>f</sub>(h<sub>L</sub>) W<sub>U</sub>,&nbsp; z ∈ ℝ<sup>V</sup>",
        ViewSpec("next token", "logits"),
        "Next token with \u201cshow logits\u201d: the raw scores of the most likely tokens."),
    Concept(
        "softmax_temperature", "Softmax and temperature",
        "The softmax turns logits into probabilities. Dividing the logits by a temperature τ "
        "first sharpens the distribution (τ &lt; 1) or flattens it (τ &gt; 1); τ = 0 means "
        "always the most likely token.",
        "p<sub>i</sub> = e<sup>z<sub>i</sub>/τ</sup> / Σ<sub>j</sub> "
        "e<sup>z<sub>j</sub>/τ</sup>",
        ViewSpec("next token", "probs"),
        "Next token: move the temperature slider and watch the bars."),
    Concept(
        "sampling", "Sampling (top-k, top-p, seed)",
        "The next token is drawn from the probabilities. Top-k keeps only the k most likely "
        "tokens; top-p keeps the smallest set whose probabilities add up to p. A fixed seed "
        "makes the draws repeatable.",
        "t<sub>T</sub> ~ p(· | t<sub>0</sub> … t<sub>T−1</sub>)",
        ViewSpec("next token", "probs"),
        "Next token: the bars cut off by top-k / top-p are dimmed; Resample draws again."),
    Concept(
        "training", "Training: the loss",
        "Training shows the model text and, at every position, measures how surprised it was "
        "by the true next token: the cross-entropy loss. Gradient descent changes every weight "
        "a little to lower it; the loss falls and the samples turn from noise into words.",
        "L = −(1/T) Σ<sub>i</sub> log p(t<sub>i+1</sub> | t<sub>0</sub> … t<sub>i</sub>)",
        ViewSpec("training", "samples"),
        "Training: the loss curve, and samples taken as it trains."),
    Concept(
        "induction", "Induction heads",
        "A pair of heads that learn to copy: a head in an early layer marks each token with "
        "the one before it; a head in a later layer then finds the earlier occurrence of the "
        "current token and attends to what followed it. They form suddenly during training, "
        "with a drop in the loss (Olsson et al., 2022).",
        "… A B … A → B",
        ViewSpec("attention", "head", 1, 0, "probs"),
        "Attention, layer 1 (open File → Examples → induction first): the off-diagonal stripe."),
    Concept(
        "encoder-decoder", "The encoder–decoder Transformer",
        "The original Transformer (Vaswani et al., 2017) has two stacks. The encoder reads the "
        "whole source at once, with self-attention that has no causal mask, and turns it into "
        "one vector per source token: the memory. The decoder writes the target token by token, "
        "like GPT, and each of its layers has a third sub-layer that reads the memory. GPT kept "
        "only the decoder; BERT kept only the encoder.",
        "M = Encoder(x<sub>src</sub>),&nbsp; p(y<sub>t</sub> | y<sub>&lt;t</sub>, x<sub>src</sub>)"
        " = Decoder(y<sub>&lt;t</sub>, M)",
        ViewSpec("architecture", ""),
        "Architecture: the encoder on the left, the decoder on the right, and the arrows from "
        "the encoder's output into every decoder layer (File → Examples → numbers_to_words).",
        example="numbers_to_words", kind="encoder-decoder"),
    Concept(
        "cross-attention", "Cross-attention (the decoder's third sub-layer)",
        "In each decoder layer, after its masked self-attention, cross-attention lets every "
        "target token look at the source: the queries come from the decoder, the keys and "
        "values from the encoder's output. Each row is a distribution over the source tokens, "
        "so it shows which source token the decoder reads while it writes each target token.",
        "CrossAttn(Y, M) = softmax((YW<sub>Q</sub>)(MW<sub>K</sub>)ᵀ / √d<sub>head</sub>) "
        "MW<sub>V</sub>",
        ViewSpec("attention", "head", 0, 0, "probs", family="cross"),
        "Attention → Cross-attention: target tokens (rows) × source tokens (columns) "
        "(File → Examples → numbers_to_words).",
        example="numbers_to_words", kind="encoder-decoder"),
    Concept(
        "bert", "A bidirectional encoder (BERT)",
        "An encoder alone, with no causal mask: every token sees the tokens before and after "
        "it. It does not generate text; it is trained to fill in hidden tokens: some tokens are "
        "replaced by [MASK] and the model predicts them from both sides. Click a chip to hide "
        "it and tick \u201cCausal mask (as GPT)\u201d to see what a one-sided view loses.",
        "p(x<sub>i</sub> | x<sub>≠i</sub>) = softmax(W<sub>U</sub> h<sub>i</sub>),&nbsp; "
        "h = Encoder(x with x<sub>i</sub> → [MASK])",
        ViewSpec("attention", "grid", 0, 0, "probs"),
        "Attention, all heads: the upper triangle is filled; the Next token panel shows the "
        "prediction for the masked position (File → Examples → sonnets_encoder).",
        example="sonnets_encoder", kind="encoder"),
)


def concept(key: str) -> Concept | None:
    return next((c for c in CONCEPTS if c.key == key), None)
