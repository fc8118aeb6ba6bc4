"""A tiny symbolic autograd: which tensors does backward keep, and how large are they?

The estimator walks one transformer block op by op, the way the Hugging Face module runs it,
and records the tensors autograd saves for backward (``ctx.save_for_backward`` / the
``_saved_*`` attributes of each graph node), deduplicated by identity as the CUDA allocator
would see them. The rules per op are read from the derivative formulas in PyTorch
(``tools/autograd/derivatives.yaml``) and the library code named at each op:

- ``mm`` / ``linear``: saves the input if the weight needs a gradient, and the weight if the
  input needs one; under ``torch.autocast`` the saved tensors are the autocast copies
  (activations cast per call, weights cast once per forward and cached).
- ``silu`` / ``gelu`` / ``pow``: save their input; ``tanh`` / ``rsqrt`` / ``softmax`` /
  ``log_softmax``: save their result; ``mul`` saves each operand whose partner needs a grad;
  ``add``, views and dtype casts save nothing.
- ``native_dropout``: saves the boolean mask (1 byte per element) when its input needs grad.
- fused attention (SDPA flash / memory-efficient, FlashAttention-2): saves q, k, v, the output
  and an fp32 log-sum-exp of b*a*s (Dao et al. 2022, arXiv 2205.14135); eager attention saves
  the fp32 softmax of b*a*s*s as well (Korthikanti et al. 2022, arXiv 2205.05198, the 5as/h term).

Sizes are plain ints (elements and bytes); nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class T:
    """A symbolic tensor: element count, bytes per element, whether it needs a gradient."""

    numel: int
    elem: int
    grad: bool = True
    uid: int = 0

    @property
    def nbytes(self) -> int:
        return self.numel * self.elem


@dataclass
class Graph:
    """Collects saved tensors (by identity) and tracks the largest transient."""

    saved: dict[int, int] = field(default_factory=dict)
    transient_peak: int = 0
    # the largest saved-so-far + short-lived bytes: a recomputed block's forward peak
    live_peak: int = 0
    _next: int = 1

    def new(self, numel: int, elem: int, grad: bool = True) -> T:
        t = T(numel, elem, grad, self._next)
        self._next += 1
        return t

    def save(self, *ts: T) -> None:
        for t in ts:
            self.saved[t.uid] = t.nbytes

    def save_bytes(self, n_bytes: int) -> None:
        """A saved buffer with no identity shared with anything else (masks, lse)."""
        uid = self._next
        self._next += 1
        self.saved[uid] = n_bytes

    def transient(self, n_bytes: int) -> None:
        self.transient_peak = max(self.transient_peak, n_bytes)
        self.live(n_bytes)

    def live(self, n_bytes: int) -> None:
        """Short-lived bytes next to everything saved so far (not a block-wide transient)."""
        self.live_peak = max(self.live_peak, self.saved_bytes + n_bytes)

    @property
    def saved_bytes(self) -> int:
        return sum(self.saved.values())

    # --- elementwise ops --------------------------------------------------------------
    def cast(self, x: T, elem: int) -> T:
        """``x.to(dtype)``: a copy when the dtype changes; saves nothing."""
        if x.elem == elem:
            return x
        return self.new(x.numel, elem, x.grad)

    def unary_saves_input(self, x: T, elem: int | None = None) -> T:
        """silu / gelu / relu-like: saves the input, returns a new tensor."""
        if x.grad:
            self.save(x)
        return self.new(x.numel, elem or x.elem, x.grad)

    def unary_saves_result(self, x: T, elem: int | None = None) -> T:
        """tanh / sigmoid / softmax: saves the result."""
        out = self.new(x.numel, elem or x.elem, x.grad)
        if x.grad:
            self.save(out)
        return out

    def mul(self, x: T, y: T) -> T:
        """Elementwise product: saves each operand whose partner needs a gradient."""
        if y.grad:
            self.save(x)
        if x.grad:
            self.save(y)
        return self.new(max(x.numel, y.numel), max(x.elem, y.elem), x.grad or y.grad)

    def add(self, x: T, y: T) -> T:
        return self.new(max(x.numel, y.numel), max(x.elem, y.elem), x.grad or y.grad)

    def dropout(self, x: T, p: float) -> T:
        """``F.dropout`` in training: a new tensor and a saved bool mask; p == 0 is identity."""
        if p <= 0:
            return x
        if x.grad:
            self.save_bytes(x.numel)  # bool mask
        return self.new(x.numel, x.elem, x.grad)
