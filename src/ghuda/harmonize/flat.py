"""Flat task gradients: a vector harmonizer's step in a number of kernels that does not grow
with the number of parameter tensors, and without reading a value back to the host.

`flatten` packs g1 and g2 of every tensor of one dtype and device into two rows (one
``torch._chunk_cat`` each; on CUDA one kernel; on the CPU one pair of rows per bucket of at
most 16 MiB, `bucket_elements`) and scales each row by an exact power of two so
that its largest magnitude lies in [0.5, 2): products of weights up to ~1e40 with gradients of
norm 1e20 then stay in float32's range, the role float64 played in the per-tensor code, and
the scaling itself rounds nothing. `gram` reduces the measure scope with three batched
products over chunks of `CHUNK` elements (accumulated in the rows' dtype within a chunk, in
float64 across chunks: relative error ~1e-8 for float32 gradients, against ~1e-4 for one
float32 dot over ten million elements); rows are zero-padded to whole chunks.
`FlatGroup.write` forms ``x1*g1 + x2*g2`` in place on the first row and hands each parameter a
view of it with the parameter's own strides (channels-last stays channels-last), so writing
``.grad`` costs one view per tensor and one ``_foreach_add_`` for gradients that already exist.

Row layout per group: parameters outside the measure scope, then measured parameters, then
measure tensors that are not parameters (statistics only), so that the measure scope and the
written parameters are each one contiguous slice. Tensors reached by neither loss are left out
(their ``.grad`` stays untouched); a loss that does not reach a tensor contributes zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ghuda.harmonize.grads import Grads
from ghuda.harmonize.numerics import PairStats, saturate, work_dtype

# Elements per chunk of the Gram reduction (summed in the rows' dtype, chunks in float64).
CHUNK = 4096
# Bytes per row on the CPU (`bucket_elements`).
CPU_BUCKET_BYTES = 16 * 2**20


def _dense_order(t: Tensor) -> list[int] | None:
    """Dims of `t` from the largest stride to the smallest (size-1 dims first) when `t` is
    dense and non-overlapping in some order, else None."""
    dims = sorted((d for d in range(t.dim()) if t.shape[d] != 1), key=t.stride)
    step = 1
    for d in dims:
        if t.stride(d) != step:
            return None
        step *= t.shape[d]
    return [d for d in range(t.dim()) if t.shape[d] == 1] + dims[::-1]


def _memory_order(t: Tensor) -> list[int] | None:
    """The permutation that flattens `t` in its memory order when it is dense but not
    row-major (channels-last), else None (flatten in logical order)."""
    if t.dim() < 2 or t.is_contiguous():
        return None
    return _dense_order(t)


def _strides(t: Tensor) -> tuple[int, ...]:
    """Strides of `t`'s piece of a row: its own when dense, row-major otherwise."""
    if _dense_order(t) is not None:
        return tuple(t.stride())
    out, step = [], 1
    for size in reversed(t.shape):
        out.append(step)
        step *= max(size, 1)
    return tuple(reversed(out))


def _pow2_scale(row: Tensor) -> Tensor:
    """2^e with max|row| / 2^e in [0.5, 2) (1 for a zero, empty or non-finite row), float64
    0-d."""
    if row.numel() == 0:
        return torch.ones((), dtype=torch.float64, device=row.device)
    low, high = torch.aminmax(row)  # one pass, no temporary (|row| would be one)
    amax = torch.maximum(-low, high).double()
    _, exponent = torch.frexp(amax)
    top = math.frexp(torch.finfo(row.dtype).max)[1] - 1  # 2^top is finite in row's dtype
    scale = torch.ldexp(torch.ones_like(amax), exponent.clamp(max=top))
    return torch.where(torch.isfinite(amax) & (amax > 0), scale, 1.0)


@dataclass
class FlatGroup:
    """g1 and g2 of tensors of one dtype and device as two scaled rows.

    ``rows[k] * scales[k]`` is loss k's gradient; slices: ``[0, n_outside)`` parameters outside
    the measure scope, ``[n_outside, n_params)`` measured parameters, ``[n_outside, end)`` the
    measure scope (statistics-only tensors up to `n_data`, then zeros to a whole chunk).
    """

    dtype: torch.dtype
    params: list[Tensor]
    offsets: list[int]
    rows: list[Tensor]
    scales: Tensor
    n_outside: int
    n_params: int
    n_data: int

    def measured(self) -> tuple[Tensor, Tensor]:
        return self.rows[0][self.n_outside:], self.rows[1][self.n_outside:]

    def combine_into_first(self, x1: Tensor, x2: Tensor, lo: int, hi: int) -> None:
        """``rows[0][lo:hi] = x1*g1 + x2*g2`` there (x1, x2: float64 0-d tensors)."""
        if hi > lo:
            combine(self.rows[0][lo:hi], self.rows[1][lo:hi], x1 * self.scales[0],
                    x2 * self.scales[1], out=self.rows[0][lo:hi])

    def write(self, inside: tuple[Tensor, Tensor], outside: tuple[Tensor, Tensor]) -> None:
        """Accumulate ``x1*g1 + x2*g2`` into ``.grad`` of the parameters: (x1, x2) = `inside`
        on measured ones, `outside` on the others."""
        if inside is outside:
            self.combine_into_first(*inside, 0, self.n_params)
        else:
            self.combine_into_first(*outside, 0, self.n_outside)
            self.combine_into_first(*inside, self.n_outside, self.n_params)
        update = self.rows[0]
        if self.n_data > self.n_params:  # drop the statistics-only tail
            update = update[:self.n_params].clone()
        update = saturate(update, self.dtype)
        self.rows = []
        fresh, existing, adds = [], [], []
        for p, offset in zip(self.params, self.offsets, strict=True):
            view = torch.as_strided(update, p.shape, _strides(p), offset)
            if p.grad is None:
                fresh.append((p, view))
            else:
                existing.append(p.grad)
                adds.append(view)
        for p, view in fresh:
            p.grad = view
        if existing:
            torch._foreach_add_(existing, adds)


def combine(a: Tensor, b: Tensor, x1: Tensor, x2: Tensor, out: Tensor | None = None) -> Tensor:
    """``x1*a + x2*b`` in `a`'s dtype (into `out` when given; it may be `a`)."""
    x1, x2 = x1.to(a.dtype), x2.to(a.dtype)  # one dtype per kernel, on every device
    out = torch.mul(a, x1, out=out) if out is not None else a * x1
    return out.addcmul_(b, x2)


def flatten(tensors: Sequence[Tensor], g1: Grads, g2: Grads, is_param: Sequence[bool],
            is_measured: Sequence[bool]) -> list[FlatGroup]:
    """Group `tensors` (reached by at least one loss) by dtype and device, split each group
    into buckets (`bucket_elements`) and flatten both gradients of each bucket; drops the
    references in `g1` and `g2` as each row is built."""
    keys: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        if g1[i] is not None or g2[i] is not None:
            keys.setdefault((t.dtype, t.device), []).append(i)
    groups = []
    for (dtype, device), members in keys.items():
        rank = {i: 0 if not is_measured[i] else 1 if is_param[i] else 2 for i in members}
        order = sorted(members, key=rank.__getitem__)  # outside, measured, measure-only
        limit = bucket_elements(device, work_dtype(dtype))
        for bucket in _buckets(order, [tensors[i].numel() for i in order], limit):
            groups.append(_flat_group(tensors, g1, g2, bucket, [rank[i] for i in bucket],
                                      dtype))
    return groups


def bucket_elements(device: torch.device, work: torch.dtype) -> int | None:
    """Most elements per row on `device` (None: one row per dtype and device).

    On the CPU a row stays below glibc's largest mmap threshold (32 MiB on 64-bit): a larger
    block is mapped fresh and page-faulted on every step (about 14 ms for a ResNet-18 row),
    a smaller one is recycled by malloc after the first step. CUDA's caching allocator
    recycles any size, and one row is the fewest kernels."""
    if device.type != "cpu":
        return None
    return CPU_BUCKET_BYTES // torch.empty((), dtype=work).element_size()


def _buckets(order: list[int], sizes: list[int], limit: int | None) -> list[list[int]]:
    """Consecutive runs of `order` of at most `limit` elements each (a larger tensor alone)."""
    if limit is None:
        return [order]
    out: list[list[int]] = []
    total = 0
    for i, n in zip(order, sizes, strict=True):
        if not out or total + n > limit:
            out.append([])
            total = 0
        out[-1].append(i)
        total += n
    return out


def _flat_group(tensors: Sequence[Tensor], g1: Grads, g2: Grads, order: list[int],
                ranks: list[int], dtype: torch.dtype) -> FlatGroup:
    """The two scaled rows of the tensors `order` (ranks: 0 outside the measure scope,
    1 measured parameter, 2 measure-only, non-decreasing)."""
    sizes = [tensors[i].numel() for i in order]
    offsets = [sum(sizes[:k]) for k in range(len(sizes))]
    n_written = sum(r < 2 for r in ranks)
    n_outside = sum(sizes[:sum(r == 0 for r in ranks)])
    n_params = sum(sizes[:n_written])
    n_data = sum(sizes)
    pad = -(n_data - n_outside) % CHUNK
    rows = [_row(tensors, grads, order, work_dtype(dtype), pad) for grads in (g1, g2)]
    scales = torch.stack([_pow2_scale(r) for r in rows])
    for r, s in zip(rows, scales, strict=True):
        r.div_(s)
    return FlatGroup(dtype=dtype, params=[tensors[i] for i in order[:n_written]],
                     offsets=offsets[:n_written], rows=rows, scales=scales,
                     n_outside=n_outside, n_params=n_params, n_data=n_data)


def _row(tensors: Sequence[Tensor], grads: Grads, order: Sequence[int],
         work: torch.dtype, pad: int) -> Tensor:
    """One loss's gradients of `order`, in memory order, as one row (zeros where None), then
    `pad` zeros."""
    pieces = []
    for i in order:
        g, t = grads[i], tensors[i]
        grads[i] = None
        if t.numel() == 0:
            continue
        if g is None:
            g = torch.zeros_like(t)
        if g.requires_grad:  # never for autograd.grad's results: no op per tensor
            g = g.detach()
        perm = _memory_order(t)
        if perm is not None:
            g = g.permute(perm)
        pieces.append(g.reshape(1) if g.dim() == 0 else g)
    like = tensors[order[0]]
    if pad:
        pieces.append(torch.zeros(pad, dtype=like.dtype, device=like.device))
    if not pieces:
        return torch.zeros(0, dtype=work, device=like.device)
    row = torch._chunk_cat(pieces, 0, 1).view(-1)
    return row if row.dtype == work else row.to(work)


def gram(groups: Sequence[FlatGroup], device: torch.device) -> PairStats:
    """<g1, g2>, |g1|^2, |g2|^2 over the measure scope of all groups (float64 results)."""
    total = torch.zeros(3, dtype=torch.float64, device=device)
    for group in groups:
        a, b = (r.view(-1, 1, CHUNK) for r in group.measured())
        with torch.autocast(a.device.type, enabled=False):  # full precision even if asked
            parts = torch.cat([torch.bmm(a, b.mT), torch.bmm(a, a.mT), torch.bmm(b, b.mT)], 1)
        m1, m2 = group.scales
        total += (parts.double().sum(0).view(3) * torch.stack((m1 * m2, m1 * m1, m2 * m2))
                  ).to(device)
    return PairStats(dot=total[0], sq1=total[1], sq2=total[2])
