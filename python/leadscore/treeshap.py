"""Exact TreeSHAP of a LightGBM booster with per-leaf tables, compiled with numba.

LightGBM's `predict(pred_contrib=True)` runs the TreeSHAP recursion for every lead and every
tree: each tree costs O(leaves x depth^2) per lead, about 80 predictions of work, and it is most
of a nightly run's scoring time. The same numbers come out of a cheaper route:

* a leaf's TreeSHAP terms depend on the lead only through one bit per distinct feature on the
  leaf's path: does the lead satisfy every split of the path on that feature? (the "one
  fraction" of the path element; the "zero fractions" are the covers, fixed by the tree);
* so each leaf has at most 2^d term vectors (d distinct features on its path), and the leads of
  a batch use few of them: each is computed once, with LightGBM's own path algebra (ExtendPath,
  UnwoundPathSum), kept in a table, and every further lead with the same bits reads it back.

Per lead and tree this is one pass over the tree's splits and a table look-up per leaf instead
of the recursion. The kernel goes leaf by leaf over all the leads of a batch (the leads' split
directions as one bit word each, the features as contiguous columns, the sums kept feature-major),
so each leaf's table is small and hot and the inner loops run over contiguous arrays: for 5,271
leads and a 600-tree model, 1.25 s against 3.2 s on 2 threads when it went lead by lead, every
number the same. The result equals LightGBM's contributions up to the order of the floating
point additions (about 1e-15; tests/test_reasons.py compares them); the bias column is
LightGBM's own. The decision of each split follows LightGBM's (tree.h NumericalDecision /
CategoricalDecision: missing types None/Zero/NaN, default direction, category bitsets, inputs
with |x| <= 1e-35 read as zero).

numba is a dependency (pyproject.toml). Where it cannot be imported (`available()` is False: an
install without it) or for a model this module does not cover (not binary, linear trees) the
caller uses LightGBM's pred_contrib; the reasons are the same either way.
"""

from __future__ import annotations

import importlib.util
import itertools
from typing import Any

import numpy as np

# a leaf with more distinct features on its path than this gets its terms computed per lead
# (no table): 2^TABLE_MAX_FEATURES slots per leaf at most (an index of 2 MB, reset per leaf in
# 2^d of them). A table pays as soon as codes repeat: on the 600-tree baseline (5,271 leads, 2
# threads, 4 alternating pairs) 18 took 1.17-1.34 s against 1.33-1.77 s for 14, the same numbers
TABLE_MAX_FEATURES = 18
# LightGBM reads an input within this of zero as zero (kZeroThreshold, a float 1e-35)
ZERO_THRESHOLD = float(np.float32(1e-35))
# the trees are cut into this many ranges, each with its own sums, added in a fixed order: the
# result does not depend on how many threads share the ranges
TREE_RANGES = 4


def available() -> bool:
    """Whether numba is installed (it is imported, and the kernels compiled or read from numba's
    cache beside this file, only when a LightGBMTreeShap is made)."""
    return importlib.util.find_spec("numba") is not None


def _compile() -> None:
    """Compile the kernels once per process (numba's cache=True keeps the machine code)."""
    global _leaf_terms, _explain
    if _explain is not _explain_python:
        return
    import numba

    jit = numba.njit(cache=True, nogil=True)
    _leaf_terms = jit(_leaf_terms_python)
    _explain = jit(_explain_python)


# ------------------------------------------------------------------------------- the model


def _trees(model_text: str) -> list[dict[str, str]]:
    trees: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current[key] = value
    return trees


def _header(model_text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            break
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def _numbers(text: str, dtype: Any) -> np.ndarray:
    return np.array(text.split(), dtype=dtype)


def _expected_value(values: list[float], counts: list[float], total: float) -> float:
    """A tree's expected raw score as LightGBM's Tree::ExpectedValue computes it (each leaf's
    value weighted by its share of the root's `total` training rows, added leaf by leaf in
    double), so the bias equals its pred_contrib bias column bit for bit."""
    out = 0.0
    for count, value in zip(counts, values, strict=True):
        out += (count / total) * value
    return out


class LightGBMTreeShap:
    """The flattened trees of one booster, ready for the kernel (which keeps its tables per leaf)."""

    def __init__(self, booster: Any, n_columns: int) -> None:
        """`booster`: a lightgbm.Booster, or the text of a saved model (its file), which spares
        the caller LightGBM's import (with sklearn and scipy behind it, about 2 s)."""
        _compile()
        text = booster if isinstance(booster, str) else booster.model_to_string()
        header = _header(text)
        if int(header.get("num_class", "1")) != 1 or int(header.get("num_tree_per_iteration", "1")) != 1:
            raise ValueError("only single-output (binary) boosters")
        self.n_columns = n_columns
        node_feat: list[int] = []
        node_thr: list[float] = []
        node_type: list[int] = []
        node_cat_lo: list[int] = []
        node_cat_hi: list[int] = []
        cat_words: list[int] = []
        tree_node_start: list[int] = []
        tree_node_count: list[int] = []
        tree_leaf_start: list[int] = []
        leaf_value: list[float] = []
        leaf_slot_start: list[int] = []
        slot_feat: list[int] = []
        slot_z: list[float] = []
        slot_mask: list[int] = []
        slot_want: list[int] = []
        bias = 0.0
        for tree in _trees(text):
            if int(tree.get("is_linear", "0")):
                raise ValueError("linear trees")
            leaves = int(tree["num_leaves"])
            tree_node_start.append(len(node_feat))
            tree_node_count.append(leaves - 1)
            tree_leaf_start.append(len(leaf_value))
            values = _numbers(tree["leaf_value"], np.float64)
            if leaves == 1:  # a constant: bias only
                leaf_slot_start.append(len(slot_feat))
                leaf_value.append(float(values[0]))
                bias += float(values[0])
                continue
            split = _numbers(tree["split_feature"], np.int64)
            threshold = _numbers(tree["threshold"], np.float64)
            decision = _numbers(tree["decision_type"], np.int64)
            left = _numbers(tree["left_child"], np.int64)
            right = _numbers(tree["right_child"], np.int64)
            # Python lists from here: indexing numpy scalars one by one is most of the time
            values_list = values.tolist()
            leaf_list = _numbers(tree["leaf_count"], np.float64).tolist()
            inner_list = _numbers(tree["internal_count"], np.float64).tolist()
            bias += _expected_value(values_list, leaf_list, inner_list[0])
            if int(tree.get("num_cat", "0")) > 0:
                bounds = _numbers(tree["cat_boundaries"], np.int64)
                words = _numbers(tree["cat_threshold"], np.int64)
            split_list = split.tolist()
            decision_list = decision.tolist()
            node_feat.extend(split_list)
            node_thr.extend(threshold.tolist())
            node_type.extend(decision_list)
            for j in range(leaves - 1):
                node_cat_lo.append(len(cat_words))
                if decision_list[j] & 1:  # categorical: its bitset
                    cat = int(threshold[j])
                    cat_words.extend(words[bounds[cat]:bounds[cat + 1]].tolist())
                node_cat_hi.append(len(cat_words))
            left_list = left.tolist()
            right_list = right.tolist()

            def count(child: int, inner_list: list = inner_list, leaf_list: list = leaf_list) -> float:
                return inner_list[child] if child >= 0 else leaf_list[~child]

            paths: dict[int, list[tuple[int, bool, float]]] = {}
            stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
            while stack:
                node, path = stack.pop()
                for child, is_left in ((left_list[node], True), (right_list[node], False)):
                    step = [*path, (node, is_left, count(child) / count(node))]
                    if child < 0:
                        paths[~child] = step
                    else:
                        stack.append((child, step))
            for leaf in range(leaves):
                # per distinct feature of the path: [zero fraction, mask, want], the fraction
                # multiplied in path order; the dict keeps LightGBM's path order once a repeat is
                # moved last (popped and put back)
                slots: dict[int, list] = {}
                for node, is_left, ratio in paths[leaf]:
                    feature = split_list[node]
                    slot = slots.pop(feature, None) or [1.0, 0, 0]
                    slot[0] = ratio * slot[0]
                    slot[1] |= 1 << node
                    if is_left:
                        slot[2] |= 1 << node
                    slots[feature] = slot
                leaf_slot_start.append(len(slot_feat))
                for feature, (zero_fraction, mask, want) in slots.items():
                    slot_feat.append(feature)
                    slot_z.append(zero_fraction)
                    slot_mask.append(mask)
                    slot_want.append(want)
            leaf_value.extend(values_list)
        leaf_slot_start.append(len(slot_feat))
        tree_leaf_start.append(len(leaf_value))
        if slot_feat and max(slot_feat) >= n_columns:
            raise ValueError("a split on a column the matrix does not have")
        words_per_mask = max(1, (max(tree_node_count, default=1) + 63) // 64)
        self.slot_mask = np.zeros((len(slot_mask), words_per_mask), dtype=np.uint64)
        self.slot_want = np.zeros((len(slot_mask), words_per_mask), dtype=np.uint64)
        for w in range(words_per_mask):  # word w of each mask: its bits 64w .. 64w + 63
            self.slot_mask[:, w] = [(mask >> (64 * w)) & 0xFFFFFFFFFFFFFFFF for mask in slot_mask]
            self.slot_want[:, w] = [(want >> (64 * w)) & 0xFFFFFFFFFFFFFFFF for want in slot_want]
        self.node_feat = np.array(node_feat, dtype=np.int64)
        self.node_thr = np.array(node_thr, dtype=np.float64)
        self.node_type = np.array(node_type, dtype=np.int64)
        self.node_cat_lo = np.array(node_cat_lo, dtype=np.int64)
        self.node_cat_hi = np.array(node_cat_hi, dtype=np.int64)
        self.cat_words = np.array(cat_words, dtype=np.uint32)
        self.tree_node_start = np.array(tree_node_start, dtype=np.int64)
        self.tree_node_count = np.array(tree_node_count, dtype=np.int64)
        self.tree_leaf_start = np.array(tree_leaf_start, dtype=np.int64)
        self.leaf_value = np.array(leaf_value, dtype=np.float64)
        self.leaf_slot_start = np.array(leaf_slot_start, dtype=np.int64)
        self.slot_feat = np.array(slot_feat, dtype=np.int64)
        self.slot_z = np.array(slot_z, dtype=np.float64)
        self.slots_per_tree = np.diff(self.leaf_slot_start[self.tree_leaf_start])
        # the bias (expected value of the raw score), summed tree by tree as LightGBM does
        self.bias = bias

    def _split(self, parts: int) -> list[tuple[int, int]]:
        """Contiguous tree ranges of about equal work (splits and path slots)."""
        n_trees = len(self.tree_node_count)
        work = np.cumsum(self.slots_per_tree + self.tree_node_count)
        cuts = [0, *(int(np.searchsorted(work, work[-1] * i / parts)) for i in range(1, parts)), n_trees]
        return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]

    def contributions(self, X: np.ndarray, threads: int = 1) -> np.ndarray:
        """(rows, columns + 1): the booster's TreeSHAP contributions in raw score, bias last.
        The trees come in TREE_RANGES ranges, each with its own sums (added in a fixed order),
        shared by `threads` threads."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_columns:
            raise ValueError(f"expected a matrix of {self.n_columns} columns, got shape {X.shape}")
        # a feature's values side by side, as the kernel reads them: the one copy of the input
        # (scoring's float32 matrix is column-major, so this is only the conversion to float64)
        columns = np.ascontiguousarray(X.T, dtype=np.float64)
        ranges = self._split(TREE_RANGES)
        # feature-major sums: a leaf adds one term per feature to every lead, along a row
        outs = [np.zeros((self.n_columns + 1, X.shape[0]), dtype=np.float64) for _ in ranges]
        if threads <= 1 or len(ranges) == 1:
            for out, trees in zip(outs, ranges, strict=True):
                self._run(columns, out, trees)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(threads, len(ranges))) as pool:  # the kernel releases the GIL
                list(pool.map(self._run, [columns] * len(outs), outs, ranges))
        del columns  # freed before the row-major copy below: one array fewer at the peak
        total = outs[0]
        for other in outs[1:]:
            total += other
        out = np.ascontiguousarray(total.T)
        out[:, -1] = self.bias
        return out

    def _run(self, columns: np.ndarray, out: np.ndarray, trees: tuple[int, int]) -> None:
        """Explain trees trees[0] .. trees[1] - 1 into `out` (features x leads)."""
        first, last = trees
        _explain(
            columns, out, first, last, self.node_feat, self.node_thr, self.node_type, self.node_cat_lo,
            self.node_cat_hi, self.cat_words, self.tree_node_start, self.tree_node_count, self.tree_leaf_start,
            self.leaf_value, self.leaf_slot_start, self.slot_feat, self.slot_z, self.slot_mask, self.slot_want,
            TABLE_MAX_FEATURES,
        )


# ------------------------------------------------------------------------------- kernels


def _leaf_terms_python(zero: np.ndarray, one: np.ndarray, d: int, value: float, out: np.ndarray) -> None:
    """TreeSHAP terms of one leaf: the path of d distinct features with their zero fractions
    (covers) and one fractions (0/1), extended from LightGBM's dummy root element, then each
    element's unwound path sum times (one - zero) times the leaf value."""
    pz = np.empty(d + 1)
    po = np.empty(d + 1)
    pw = np.empty(d + 1)
    for depth in range(d + 1):  # ExtendPath
        zf = 1.0 if depth == 0 else zero[depth - 1]
        of = 1.0 if depth == 0 else one[depth - 1]
        pz[depth] = zf
        po[depth] = of
        pw[depth] = 1.0 if depth == 0 else 0.0
        for i in range(depth - 1, -1, -1):
            pw[i + 1] += of * pw[i] * (i + 1) / (depth + 1)
            pw[i] = zf * pw[i] * (depth - i) / (depth + 1)
    for index in range(1, d + 1):  # UnwoundPathSum
        of = po[index]
        zf = pz[index]
        next_one = pw[d]
        total = 0.0
        for i in range(d - 1, -1, -1):
            if of != 0:
                tmp = next_one * (d + 1) / ((i + 1) * of)
                total += tmp
                next_one = pw[i] - tmp * zf * ((d - i) / (d + 1))
            else:
                total += (pw[i] / zf) / ((d - i) / (d + 1))
        out[index - 1] = total * (of - zf) * value


def _explain_python(columns, out, tree0, tree1, node_feat, node_thr, node_type, node_cat_lo, node_cat_hi,
                    cat_words, tree_node_start, tree_node_count, tree_leaf_start, leaf_value, leaf_slot_start,
                    slot_feat, slot_z, slot_mask, slot_want, max_table_features):
    """Add the terms of trees tree0 .. tree1 - 1 to `out` (features x leads; `columns`: the
    leads' values, features x leads). Per tree: every lead's direction at every split (bit j of
    its words: left at split j); then per leaf: each lead's code (bit k: the lead satisfies the
    path's splits on the leaf's k-th feature), the terms of each code met computed once into the
    leaf's table, and the terms added feature by feature in leaf order. For any one lead and
    feature the additions come in the order of the lead-by-lead walk: the same sums."""
    n = columns.shape[1]
    words = slot_mask.shape[1]
    bits = np.zeros((n, words), dtype=np.uint64)
    low = np.empty(n, dtype=np.uint64)
    one = np.uint64(1)
    code = np.empty(n, dtype=np.int64)
    at = np.empty(n, dtype=np.int64)
    # one leaf's table: the entry of each code, and the terms of the codes met (d values each)
    table_size = 1 << max_table_features
    index = np.empty(table_size, dtype=np.int64)
    values = np.empty(min(n, table_size) * max(max_table_features, 1))
    zero_buf = np.empty(64)
    one_buf = np.empty(64)
    terms = np.empty(64)
    for t in range(tree0, tree1):
        first = tree_node_start[t]
        bits[:, :] = 0
        for j in range(tree_node_count[t]):  # every lead's direction at split j
            g = first + j
            feature = node_feat[g]
            kind = node_type[g]
            threshold = node_thr[g]
            word = j >> 6
            bit = one << np.uint64(j & 63)
            for r in range(n):
                fval = columns[feature, r]
                if fval >= -ZERO_THRESHOLD and fval <= ZERO_THRESHOLD:
                    fval = 0.0
                if kind & 1:  # categorical: left when the category is in the bitset
                    go_left = False
                    if not np.isnan(fval):
                        category = int(fval)
                        if category >= 0:
                            cword = category // 32
                            if cword < node_cat_hi[g] - node_cat_lo[g]:
                                go_left = ((cat_words[node_cat_lo[g] + cword] >> (category % 32)) & 1) == 1
                else:
                    missing = (kind >> 2) & 3  # 0 none, 1 zero, 2 NaN
                    if np.isnan(fval) and missing != 2:
                        fval = 0.0
                    if (missing == 1 and fval == 0.0) or (missing == 2 and np.isnan(fval)):
                        go_left = (kind & 2) != 0  # the default direction
                    else:
                        go_left = fval <= threshold
                if go_left:
                    bits[r, word] |= bit
        if words == 1:  # most trees: one word per lead, read by every leaf's tight loop below
            for r in range(n):
                low[r] = bits[r, 0]
        for leaf in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
            s0 = leaf_slot_start[leaf]
            d = leaf_slot_start[leaf + 1] - s0
            if d == 0:
                continue
            code[:] = 0
            if words == 1:
                for k in range(d):
                    mask = slot_mask[s0 + k, 0]
                    want = slot_want[s0 + k, 0]
                    flag = np.int64(1) << k
                    for r in range(n):
                        if (low[r] & mask) == want:
                            code[r] |= flag
            else:
                for k in range(d):
                    flag = np.int64(1) << k
                    for r in range(n):
                        agree = True
                        for w in range(words):
                            if (bits[r, w] & slot_mask[s0 + k, w]) != slot_want[s0 + k, w]:
                                agree = False
                        if agree:
                            code[r] |= flag
            tabled = d <= max_table_features
            if tabled:
                index[:1 << d] = -1
            used = 0
            for r in range(n):
                entry = index[code[r]] if tabled else -1
                if entry < 0:
                    for k in range(d):
                        zero_buf[k] = slot_z[s0 + k]
                        one_buf[k] = 1.0 if (code[r] >> k) & 1 else 0.0
                    _leaf_terms(zero_buf, one_buf, d, leaf_value[leaf], terms)
                    if tabled:
                        entry = used
                        for k in range(d):
                            values[entry + k] = terms[k]
                        used += d
                        index[code[r]] = entry
                    else:  # too many features for a table: this lead's terms straight in
                        for k in range(d):
                            out[slot_feat[s0 + k], r] += terms[k]
                at[r] = entry
            if tabled:
                for k in range(d):
                    feature = slot_feat[s0 + k]
                    for r in range(n):
                        out[feature, r] += values[at[r] + k]


# compiled by _compile (numba); the plain functions run only where they are called uncompiled
_leaf_terms = _leaf_terms_python
_explain = _explain_python
