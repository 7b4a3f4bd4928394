"""Numba kernels of SimGap's KD-tree (:mod:`._nn_jit` is the interface; importing this module imports Numba).

Every function is compiled with ``nogil=True`` (threads of :mod:`._nn_jit` run them side by side) and ``cache=True``
(the machine code is kept on disk after the first call in an environment). Shapes: ``pts`` (M, 3) float64 the
caller's points (never copied), ``idx`` (M,) int32 their permutation into leaf order, ``lo``/``hi`` (K, 3) float32
node boxes (each node's tight box rounded outward), ``left`` (K,) int32 first child or -1 for a leaf,
``start``/``end`` (K,) int32 each node's range in ``idx`` (int32 keeps the tree at ~7 bytes per point; no cloud that
fits in memory has 2^31 points).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["build", "search"]


@njit(cache=True, nogil=True)
def swap(idx, i, j):
    t = idx[i]
    idx[i] = idx[j]
    idx[j] = t


@njit(cache=True, nogil=True)
def partition(pts, idx, s, e, dim, cut):
    """Reorder [s, e) so that coordinate ``dim`` < cut comes first; returns the first index >= cut."""
    i = s
    j = e - 1
    while True:
        while i <= j and pts[idx[i], dim] < cut:
            i += 1
        while i <= j and pts[idx[j], dim] >= cut:
            j -= 1
        if i >= j:
            return i
        swap(idx, i, j)
        i += 1
        j -= 1


@njit(cache=True, nogil=True)
def select(pts, idx, s, e, k, dim):
    """Quickselect: the k-th smallest coordinate ``dim`` of [s, e) at k, smaller ones before, larger after."""
    lo = s
    hi = e - 1
    while hi > lo:
        a = pts[idx[lo], dim]
        b = pts[idx[(lo + hi) >> 1], dim]
        c = pts[idx[hi], dim]
        piv = max(min(a, b), min(max(a, b), c))  # median of three
        i = lo
        j = hi
        while i <= j:
            while pts[idx[i], dim] < piv:
                i += 1
            while pts[idx[j], dim] > piv:
                j -= 1
            if i <= j:
                swap(idx, i, j)
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(cache=True, nogil=True)
def tight_box(pts, idx, s, e, lo, hi):
    """The float64 bounding box of points idx[s:e] into lo (3,), hi (3,)."""
    for d in range(3):
        lo[d] = pts[idx[s], d]
        hi[d] = pts[idx[s], d]
    for i in range(s + 1, e):
        r = idx[i]
        for d in range(3):
            v = pts[r, d]
            if v < lo[d]:
                lo[d] = v
            if v > hi[d]:
                hi[d] = v


@njit(cache=True, nogil=True)
def round_down_f32(v):
    """The largest float32 <= v: a box rounded outward still holds its points, so pruning by it stays exact."""
    x = np.float32(v)
    if np.float64(x) > v:
        x = np.nextafter(x, np.float32(-np.inf))
    return x


@njit(cache=True, nogil=True)
def round_up_f32(v):
    """The smallest float32 >= v."""
    x = np.float32(v)
    if np.float64(x) < v:
        x = np.nextafter(x, np.float32(np.inf))
    return x


@njit(cache=True, nogil=True)
def build(points, leaf, median_depth, stack_n):
    n = points.shape[0]
    pts = points
    idx = np.arange(n, dtype=np.int32)
    cap = max(16, 4 * ((n + leaf - 1) // leaf))
    left = np.empty(cap, np.int32)
    start = np.empty(cap, np.int32)
    end = np.empty(cap, np.int32)
    blo = np.empty(3)  # a node's tight box, where its cell's midpoint misses its points
    bhi = np.empty(3)
    stack = np.empty(stack_n, np.int64)
    depth = np.empty(stack_n, np.int64)
    clo = np.empty((stack_n, 3))  # each pending node's cell: it picks the split side and the midpoint
    chi = np.empty((stack_n, 3))
    for d in range(3):
        clo[0, d] = pts[:, d].min()
        chi[0, d] = pts[:, d].max()
    nn = 1
    start[0] = 0
    end[0] = n
    stack[0] = 0
    depth[0] = 0
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        s = start[node]
        e = end[node]
        if e - s <= leaf:
            left[node] = -1
            continue
        dim = 0
        for d in range(1, 3):
            if chi[sp, d] - clo[sp, d] > chi[sp, dim] - clo[sp, dim]:
                dim = d
        cut = 0.5 * (clo[sp, dim] + chi[sp, dim])
        m = partition(pts, idx, s, e, dim, cut) if depth[sp] < median_depth else s
        if m == s or m == e:
            # the cell's midpoint misses the points: split their tight box (or, deep down, the count)
            tight_box(pts, idx, s, e, blo, bhi)
            dim = 0
            for d in range(1, 3):
                if bhi[d] - blo[d] > bhi[dim] - blo[dim]:
                    dim = d
            if bhi[dim] <= blo[dim]:  # every point coincides: an unsplittable leaf
                left[node] = -1
                continue
            cut = 0.5 * (blo[dim] + bhi[dim])
            m = partition(pts, idx, s, e, dim, cut) if depth[sp] < median_depth else s
            if m == s or m == e:
                m = (s + e) >> 1
                select(pts, idx, s, e, m, dim)
                cut = pts[idx[m], dim]
        if nn + 2 > cap:
            cap2 = 2 * cap
            left2 = np.empty(cap2, np.int32)
            start2 = np.empty(cap2, np.int32)
            end2 = np.empty(cap2, np.int32)
            left2[:nn] = left[:nn]
            start2[:nn] = start[:nn]
            end2[:nn] = end[:nn]
            left, start, end = left2, start2, end2
            cap = cap2
        child = nn
        nn += 2
        left[node] = child
        start[child] = s
        end[child] = m
        start[child + 1] = m
        end[child + 1] = e
        for d in range(3):
            clo[sp + 1, d] = clo[sp, d]
            chi[sp + 1, d] = chi[sp, d]
        chi[sp, dim] = cut
        clo[sp + 1, dim] = cut
        dep = depth[sp] + 1
        stack[sp] = child
        stack[sp + 1] = child + 1
        depth[sp] = dep
        depth[sp + 1] = dep
        sp += 2
    # boxes bottom-up (children come after their parent: reverse order), in float32 rounded outward: half the
    # memory and cache of float64, and a union of boxes that hold their points still holds them
    lo = np.empty((nn, 3), np.float32)
    hi = np.empty((nn, 3), np.float32)
    max_leaf = 0
    for node in range(nn - 1, -1, -1):
        c = left[node]
        if c < 0:
            tight_box(pts, idx, start[node], end[node], blo, bhi)
            for d in range(3):
                lo[node, d] = round_down_f32(blo[d])
                hi[node, d] = round_up_f32(bhi[d])
            max_leaf = max(max_leaf, end[node] - start[node])
        else:
            for d in range(3):
                lo[node, d] = min(lo[c, d], lo[c + 1, d])
                hi[node, d] = max(hi[c, d], hi[c + 1, d])
    return idx, lo, hi, left[:nn], start[:nn], end[:nn], max_leaf


@njit(cache=True, nogil=True, inline="always")
def _gap2(p, lo, hi):
    """Squared distance from the coordinate ``p`` to the interval ``[lo, hi]`` (0 inside)."""
    t = lo - p
    if t > 0.0:
        return t * t
    t = p - hi
    if t > 0.0:
        return t * t
    return 0.0


@njit(cache=True, nogil=True, inline="always")
def box_d2(px, py, pz, lo, hi, node):
    """Squared distance from ``(px, py, pz)`` to the box of ``node`` (0 inside)."""
    return (
        _gap2(px, lo[node, 0], hi[node, 0]) + _gap2(py, lo[node, 1], hi[node, 1]) + _gap2(pz, lo[node, 2], hi[node, 2])
    )


@njit(cache=True, nogil=True)
def search(pts, idx, lo, hi, left, start, end, q, q_at, s0, s1, exclude_zero, stack_n, out_d, out_i):
    """Nearest point of ``pts`` (the tree's cloud) for the queries ``q[q_at[s0:s1]]`` (``q[s0:s1]`` when ``q_at``
    is empty), in that order: distance into ``out_d``, index into ``pts`` (-1 if none) into ``out_i``, both at the
    query's row."""
    stack = np.empty(stack_n, np.int64)
    sd = np.empty(stack_n)
    prev = -1
    for k in range(s0, s1):
        row = q_at[k] if q_at.shape[0] > 0 else k
        px = q[row, 0]
        py = q[row, 1]
        pz = q[row, 2]
        best = np.inf
        bi = -1
        if prev >= 0:  # the previous query's neighbour: a real candidate, so an exact upper bound
            dx = px - pts[prev, 0]
            dy = py - pts[prev, 1]
            dz = pz - pts[prev, 2]
            d2 = dx * dx + dy * dy + dz * dz
            if d2 > 0.0 or not exclude_zero:
                best = d2
                bi = prev
        stack[0] = 0
        sd[0] = box_d2(px, py, pz, lo, hi, 0)
        sp = 1
        while sp > 0:
            sp -= 1
            if sd[sp] >= best:
                continue
            node = stack[sp]
            c = left[node]
            if c < 0:
                for j in range(start[node], end[node]):
                    r = idx[j]
                    dx = px - pts[r, 0]
                    dy = py - pts[r, 1]
                    dz = pz - pts[r, 2]
                    d2 = dx * dx + dy * dy + dz * dz
                    if d2 < best and (d2 > 0.0 or not exclude_zero):
                        best = d2
                        bi = r
            else:
                near = c
                far = c + 1
                d_near = box_d2(px, py, pz, lo, hi, c)
                d_far = box_d2(px, py, pz, lo, hi, c + 1)
                if d_far < d_near:
                    near, far, d_near, d_far = far, near, d_far, d_near
                # the nearer child on top, searched first (on a tie the left one, as before)
                if d_far < best:
                    stack[sp] = far
                    sd[sp] = d_far
                    sp += 1
                if d_near < best:
                    stack[sp] = near
                    sd[sp] = d_near
                    sp += 1
        out_d[row] = np.sqrt(best)
        out_i[row] = bi
        if bi >= 0:
            prev = bi
