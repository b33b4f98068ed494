"""Probabilities of a LightGBM binary booster, compiled with numba: the same numbers as
`Booster.predict(X)`, bit for bit, at a fraction of its cost.

Why not LightGBM's own predict: on a dense numpy matrix it turns every row into a vector of
(column, value) pairs, copies them into a per-thread buffer and then walks the trees one row at
a time, a mispredicted branch at most splits; at 1M leads of 104 columns and 600 trees of 31
leaves that was 42 s of a 57 s rescore (issue 15), about 75 us of CPU a lead.

How, instead (`_scan`, after QuickScorer, Lucchese et al., SIGIR 2015): each tree keeps one
64-bit word, a bit per leaf still possible for the row, its leaves ordered so that every split's
first subtree comes before its second. A split that sends the row to its second child rules out
its first subtree's leaves (one AND), and the row's leaf is then the lowest bit left, whatever
the order the splits were applied in. The splits are applied feature by feature from lists made
once per model: a numeric feature's splits sorted by threshold, so only those the row's value
passes are read (a sorted list stops at the first that it does not); a categorical feature's
splits listed per category. Which child counts as second is chosen per split to be the one
fewer training rows took (its child counts in the model file), so fewer splits fire: about
4,400 ANDs a lead for that model instead of 600 tree walks, 8 us of CPU (10 times less). Trees
of more than 64 leaves are walked from the root instead (`_walk`, rows in blocks of BLOCK_ROWS
so that each tree's nodes stay in cache for the block); both give the same numbers.

What makes it the same numbers (LightGBM 4, c_api.cpp / predictor.hpp / gbdt_prediction.cpp /
tree.h / binary_objective.hpp):

* input: a float32 matrix is read as float32 and widened to double (exact); float64 as it is;
  any other dtype is converted to float32 first (LightGBM's Python package does that). An input
  with |x| <= kZeroThreshold (1e-35 as a float) is dropped from the row, i.e. read as 0.0; NaN
  is kept;
* each split decides as Tree::NumericalDecision / CategoricalDecision: missing types None (NaN
  read as 0.0), Zero (0.0 and NaN take the default direction) and NaN (NaN takes the default
  direction), `x <= threshold` goes left; a categorical split sends NaN and negative values
  right, else the integer part of x goes left when it is in the split's bitset;
* the raw score is 0.0 plus each tree's leaf value, in the order of the trees, in double
  (GBDT::PredictRaw); the probability is 1.0 / (1.0 + exp(-sigmoid * raw))
  (BinaryLogloss::ConvertOutput), with the C library's exp as LightGBM's.

Each row's sum runs over the trees in the same order whatever the number of threads: threads
take disjoint ranges of rows (the kernel releases the GIL), so the result does not depend on
them. The tree text is parsed with leadscore.treeshap's readers (the same model file format).

Covered: binary objective (one output), no linear trees, no random-forest averaging. Anything
else raises ValueError in `LightGBMPredictor` and the caller (estimators.load_base_model) keeps
LightGBM's predict; likewise where numba is not installed (`available()` is False).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# available(): whether numba is installed, the one condition both compiled modules need
from leadscore.treeshap import ZERO_THRESHOLD, _header, _numbers, _trees, available  # noqa: F401

# rows _walk takes through every tree together (a block's rows and sums stay in cache)
BLOCK_ROWS = 128
# rows per task handed to a thread (a multiple of BLOCK_ROWS)
CHUNK_ROWS = 16_384
# _scan's table: per feature, the [start, end) of its lists of splits, its flags and buckets
_UP, _DOWN, _NAN, _ZERO, _FLAGS, _CAT_BASE, _CAT_LIMIT = 0, 2, 4, 6, 8, 9, 10
_COLUMNS = range(11)
# lowest set bit of a 64-bit word -> its index: (bit * DE_BRUIJN) >> 58 is distinct for each
DE_BRUIJN = np.uint64(0x022FDD63CC95386D)
BIT_INDEX = np.zeros(64, dtype=np.int64)
for _i in range(64):
    BIT_INDEX[((1 << _i) * 0x022FDD63CC95386D % 2**64) >> 58] = _i
assert sorted(BIT_INDEX.tolist()) == list(range(64))
del _i

# node kinds (decision_type: bit 0 categorical, bit 1 default left, bits 2-3 missing type)
NUM_NONE, NUM_ZERO, NUM_NAN, CATEGORICAL = 0, 1, 2, 3


def _compile() -> None:
    """Compile the kernel once per process (numba's cache=True keeps the machine code)."""
    global _walk, _scan
    if _walk is not _walk_python:
        return
    import numba

    jit = numba.njit(cache=True, nogil=True)
    _walk = jit(_walk_python)
    _scan = jit(_scan_python)


def covers(model_text: str) -> str | None:
    """None when `model_text` is a model this module predicts exactly, else why not."""
    header = _header(model_text)
    if int(header.get("num_class", "1")) != 1 or int(header.get("num_tree_per_iteration", "1")) != 1:
        return "not a single-output booster"
    if header.get("objective", "").split(" ")[0] != "binary":
        return f"objective {header.get('objective')!r} is not binary"
    head = model_text.split("\nTree=", 1)[0]
    if "\naverage_output" in head:
        return "random-forest averaging"
    if any(int(tree.get("is_linear", "0")) for tree in _trees(model_text)):
        return "linear trees"
    return None


class LightGBMPredictor:
    """The flattened trees of one binary booster: `predict(X)` is `booster.predict(X)`."""

    def __init__(self, model_text: str) -> None:
        reason = covers(model_text)
        if reason is not None:
            raise ValueError(f"model not covered: {reason}")
        _compile()
        header = _header(model_text)
        self.n_features = int(header["max_feature_idx"]) + 1
        self.sigmoid = 1.0
        for part in header["objective"].split(" ")[1:]:
            if part.startswith("sigmoid:"):
                self.sigmoid = float(part.split(":", 1)[1])
        node_feat: list[np.ndarray] = []
        node_thr: list[np.ndarray] = []
        node_kind: list[np.ndarray] = []
        node_default_left: list[np.ndarray] = []
        node_cat_lo: list[np.ndarray] = []
        node_cat_n: list[np.ndarray] = []
        node_left: list[np.ndarray] = []
        node_right: list[np.ndarray] = []
        cat_words: list[int] = []
        roots: list[int] = []
        leaf_value: list[np.ndarray] = []
        # for _scan: each node's tree, whether its second child is its left one, the leaves it
        # keeps when the row takes its second child, each tree's leaf values in _scan's order
        node_tree: list[np.ndarray] = []
        node_right_mask: list[np.ndarray] = []
        node_swap: list[np.ndarray] = []
        ordered_value: list[np.ndarray] = []
        self.scan = True  # every tree has at most 64 leaves
        n_nodes = n_leaves = 0
        for t, tree in enumerate(_trees(model_text)):
            leaves = int(tree["num_leaves"])
            values = _numbers(tree["leaf_value"], np.float64)
            if leaves == 1:  # a constant tree: its root is its leaf
                roots.append(~n_leaves)
                leaf_value.append(values[:1])
                ordered_value.append(values[:1])
                n_leaves += 1
                continue
            split = _numbers(tree["split_feature"], np.int64)
            threshold = _numbers(tree["threshold"], np.float64)
            decision = _numbers(tree["decision_type"], np.int64)
            left = _numbers(tree["left_child"], np.int64)
            right = _numbers(tree["right_child"], np.int64)
            lo = np.zeros(leaves - 1, dtype=np.int64)
            count = np.zeros(leaves - 1, dtype=np.int64)
            if int(tree.get("num_cat", "0")) > 0:
                bounds = _numbers(tree["cat_boundaries"], np.int64)
                words = _numbers(tree["cat_threshold"], np.int64)
                for j in np.flatnonzero(decision & 1):
                    cat = int(threshold[j])
                    lo[j] = len(cat_words)
                    count[j] = bounds[cat + 1] - bounds[cat]
                    cat_words.extend(int(w) for w in words[bounds[cat]:bounds[cat + 1]])
            missing = (decision >> 2) & 3
            kind = np.where(decision & 1, CATEGORICAL,
                            np.where(missing == 1, NUM_ZERO, np.where(missing == 2, NUM_NAN, NUM_NONE)))
            roots.append(n_nodes)
            node_feat.append(split)
            node_thr.append(threshold)
            node_kind.append(kind)
            node_default_left.append((decision >> 1) & 1)
            node_cat_lo.append(lo)
            node_cat_n.append(count)
            # children as global indices: a node >= 0, a leaf as ~(its global leaf index)
            node_left.append(np.where(left >= 0, left + n_nodes, ~(~left + n_leaves)))
            node_right.append(np.where(right >= 0, right + n_nodes, ~(~right + n_leaves)))
            leaf_value.append(values)
            node_tree.append(np.full(leaves - 1, t, dtype=np.int64))
            self.scan = self.scan and leaves <= 64
            if self.scan:
                # the second child of a split, the direction _scan lists, is the one fewer
                # training rows took (the counts are only a guide: any choice gives the same leaf)
                swap = np.zeros(leaves - 1, dtype=np.bool_)
                if "internal_count" in tree and "leaf_count" in tree:
                    inner = _numbers(tree["internal_count"], np.float64)
                    at_leaf = _numbers(tree["leaf_count"], np.float64)

                    def rows_at(child: np.ndarray, inner: np.ndarray = inner, at_leaf: np.ndarray = at_leaf) -> np.ndarray:
                        return np.where(child >= 0, inner[np.maximum(child, 0)], at_leaf[np.maximum(~child, 0)])

                    swap = rows_at(left) < rows_at(right)
                node_swap.append(swap)
                order, masks = _left_to_right(left, right, swap)
                ordered_value.append(values[order])
                node_right_mask.append(masks)
            n_nodes += leaves - 1
            n_leaves += leaves
        if not roots:
            raise ValueError("model not covered: no trees")

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        self.node_feat = cat(node_feat, np.int64)
        if len(self.node_feat) and int(self.node_feat.max()) >= self.n_features:
            raise ValueError("model not covered: a split on a feature past max_feature_idx")
        self.node_thr = cat(node_thr, np.float64)
        self.node_kind = cat(node_kind, np.int8)
        self.node_default_left = cat(node_default_left, np.bool_)
        self.node_cat_lo = cat(node_cat_lo, np.int64)
        self.node_cat_n = cat(node_cat_n, np.int64)
        self.node_left = cat(node_left, np.int64)
        self.node_right = cat(node_right, np.int64)
        self.cat_words = np.array(cat_words, dtype=np.uint32)
        self.roots = np.array(roots, dtype=np.int64)
        self.leaf_value = cat(leaf_value, np.float64)
        if self.scan:
            self._scan_lists(cat(node_tree, np.int64), cat(node_right_mask, np.uint64), cat(node_swap, np.bool_),
                             ordered_value)

    def _scan_lists(self, node_tree: np.ndarray, second_mask: np.ndarray, swap: np.ndarray,
                    ordered_value: list[np.ndarray]) -> None:
        """The arrays of _scan: the splits that send a row to their second child (right, or left
        where `swap`), as (tree, mask of the leaves still possible): per feature, the numeric
        splits of second child right by ascending threshold (x > threshold goes right), those of
        second child left by descending threshold (x <= threshold goes left), and those whose
        second child a NaN (or a zero, for missing type Zero) takes; per categorical feature
        and category, the splits whose second child the category takes."""
        n_f = self.n_features
        self.scan_trees = len(self.roots)
        self.scan_leaf_base = np.zeros(len(ordered_value) + 1, dtype=np.int64)
        self.scan_leaf_base[1:] = np.cumsum([len(v) for v in ordered_value])
        self.scan_leaf_value = np.concatenate(ordered_value).astype(np.float64)
        numeric = np.flatnonzero(self.node_kind != CATEGORICAL)
        feat, thr, kind = self.node_feat[numeric], self.node_thr[numeric], self.node_kind[numeric]
        dleft, flip = self.node_default_left[numeric], swap[numeric]
        table = np.zeros((n_f, len(_COLUMNS)), dtype=np.uint64)  # per feature: where its lists are
        listed: list[np.ndarray] = []  # node indices, list after list
        thresholds: list[np.ndarray] = []
        used = 0

        def add(nodes: np.ndarray, values: np.ndarray | None = None) -> tuple[int, int]:
            nonlocal used
            listed.append(nodes)
            thresholds.append(np.zeros(len(nodes)) if values is None else values)
            used += len(nodes)
            return used - len(nodes), used

        # a NaN takes: missing type None reads it as 0.0; Zero and NaN take the default
        nan_second = np.where(kind == NUM_NONE, ~(0.0 <= thr), ~dleft) ^ flip
        # a zero takes: missing type Zero the default; the others compare 0.0
        zero_second = np.where(kind == NUM_ZERO, ~dleft, ~(0.0 <= thr)) ^ flip
        for f in np.unique(feat):
            on = feat == f
            up = np.flatnonzero(on & ~flip)
            up = up[np.argsort(thr[up], kind="stable")]  # ascending thresholds
            table[f, _UP:_UP + 2] = add(numeric[up], thr[up])
            down = np.flatnonzero(on & flip)
            down = down[np.argsort(-thr[down], kind="stable")]  # descending thresholds
            table[f, _DOWN:_DOWN + 2] = add(numeric[down], thr[down])
            table[f, _NAN:_NAN + 2] = add(numeric[on & nan_second])
            special = bool((kind[on] == NUM_ZERO).any())
            table[f, _ZERO:_ZERO + 2] = add(numeric[on & zero_second]) if special else (0, 0)
            table[f, _FLAGS] = 1 | (2 if special else 0)
        # categorical: category c of feature f goes right at the splits of f without c in
        # their bitset, left at the others; NaN, c < 0 and c past every bitset of f (bucket
        # limit) go right everywhere
        bucket_starts: list[np.ndarray] = []
        n_buckets = 0
        categorical = np.flatnonzero(self.node_kind == CATEGORICAL)
        for f in np.unique(self.node_feat[categorical]):
            nodes = categorical[self.node_feat[categorical] == f]
            limit = 32 * int(self.node_cat_n[nodes].max())
            inside = np.zeros((len(nodes), limit + 1), dtype=np.bool_)
            for row, node in enumerate(nodes):
                lo, n = int(self.node_cat_lo[node]), int(self.node_cat_n[node])
                bits = np.unpackbits(self.cat_words[lo:lo + n].astype("<u4").view(np.uint8), bitorder="little")
                inside[row, :len(bits)] = bits.astype(np.bool_)
            second = ~inside ^ swap[nodes][:, None]  # (node, bucket): the category takes the second child
            table[f, _CAT_LIMIT] = limit
            table[f, _CAT_BASE] = n_buckets
            bucket_starts.append(np.array([add(nodes[second[:, b]])[0] for b in range(limit + 1)], dtype=np.uint64))
            n_buckets += limit + 1
        bucket_starts.append(np.array([used], dtype=np.uint64))
        self.scan_table = table
        self.cat_start = np.concatenate(bucket_starts)  # bucket k: cat_start[k] .. cat_start[k + 1]
        nodes = np.concatenate(listed) if listed else np.zeros(0, dtype=np.int64)
        self.entry_tree = node_tree[nodes].astype(np.uint64)
        self.entry_mask = second_mask[nodes]
        self.entry_thr = np.concatenate(thresholds) if thresholds else np.zeros(0)

    def _matrix(self, X: Any) -> np.ndarray:
        """X as LightGBM's Python package hands it to the library: float32 or float64, else
        converted to float32; C order."""
        X = np.asarray(X)
        if X.dtype != np.float32 and X.dtype != np.float64:
            X = X.astype(np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} columns, got shape {X.shape}")
        return np.ascontiguousarray(X)

    def predict(self, X: Any, threads: int = 1, raw_score: bool = False, scan: bool | None = None) -> np.ndarray:
        """P(positive) of every row (or the raw score), `booster.predict(X)` bit for bit. Rows
        are split into chunks of CHUNK_ROWS shared by `threads` threads; each row's sum is the
        same whatever the number of threads. `scan` picks the kernel (default: _scan where
        every tree has at most 64 leaves, else _walk; the two give the same numbers)."""
        X = self._matrix(X)
        scan = self.scan if scan is None else scan and self.scan
        out = np.empty(X.shape[0], dtype=np.float64)
        chunks = [(a, min(a + CHUNK_ROWS, X.shape[0])) for a in range(0, X.shape[0], CHUNK_ROWS)]
        if threads <= 1 or len(chunks) <= 1:
            for a, b in chunks:
                self._run(X, out, a, b, raw_score, scan)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(threads, len(chunks))) as pool:  # the kernel releases the GIL
                list(pool.map(lambda ab: self._run(X, out, ab[0], ab[1], raw_score, scan), chunks))
        return out

    def _run(self, X: np.ndarray, out: np.ndarray, row0: int, row1: int, raw_score: bool, scan: bool) -> None:
        if scan:
            _scan(X, out, row0, row1, self.scan_trees, self.scan_table, self.cat_start, self.entry_tree,
                  self.entry_mask, self.entry_thr, self.scan_leaf_base, self.scan_leaf_value, BIT_INDEX, DE_BRUIJN,
                  self.sigmoid, raw_score)
        else:
            _walk(X, out, row0, row1, self.roots, self.node_feat, self.node_thr, self.node_kind,
                  self.node_default_left, self.node_cat_lo, self.node_cat_n, self.cat_words, self.node_left,
                  self.node_right, self.leaf_value, self.sigmoid, raw_score)


def _left_to_right(left: np.ndarray, right: np.ndarray, swap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the tree's leaves in _scan's order, per split the mask of the leaf positions that stay
    possible when the row takes the split's second child). A split's first child is its left
    one, or its right one where `swap` says so: _scan then clears a split's first subtree when
    the row goes the other way, so the leftmost leaf left is the row's leaf."""
    order: list[int] = []
    masks = np.zeros(len(left), dtype=np.uint64)
    full = (1 << 64) - 1

    def visit(node: int) -> tuple[int, int]:
        if node < 0:
            order.append(~node)
            return len(order) - 1, len(order)
        first, second = (right[node], left[node]) if swap[node] else (left[node], right[node])
        lo, mid = visit(int(first))
        _, hi = visit(int(second))
        masks[node] = full ^ ((1 << mid) - (1 << lo))
        return lo, hi

    visit(0)
    return np.array(order, dtype=np.int64), masks


# ------------------------------------------------------------------------------- kernels


def _walk_python(X, out, row0, row1, roots, node_feat, node_thr, node_kind, node_default_left, node_cat_lo,
                 node_cat_n, cat_words, node_left, node_right, leaf_value, sigmoid, raw_score):
    """out[row0:row1] = the booster's probability (or raw score) of rows row0 .. row1 - 1, a
    block of BLOCK_ROWS rows at a time: each tree is walked from its root for every row of the
    block, each split deciding as LightGBM's (tree.h)."""
    n_cols = X.shape[1]
    buf = np.empty((BLOCK_ROWS, n_cols), dtype=np.float64)
    acc = np.empty(BLOCK_ROWS, dtype=np.float64)
    for start in range(row0, row1, BLOCK_ROWS):
        rows = min(BLOCK_ROWS, row1 - start)
        for i in range(rows):  # the row as LightGBM reads it: doubles, |x| <= 1e-35 dropped (0.0)
            for c in range(n_cols):
                v = np.float64(X[start + i, c])
                if v >= -ZERO_THRESHOLD and v <= ZERO_THRESHOLD:
                    v = 0.0
                buf[i, c] = v
            acc[i] = 0.0
        for t in range(roots.shape[0]):
            root = roots[t]
            for i in range(rows):
                node = root
                while node >= 0:
                    fval = buf[i, node_feat[node]]
                    kind = node_kind[node]
                    if kind == 3:  # categorical: NaN and negatives right, else the bitset
                        go_left = False
                        if not np.isnan(fval):
                            category = int(fval)
                            if category >= 0:
                                word = category >> 5
                                if word < node_cat_n[node]:
                                    go_left = ((cat_words[node_cat_lo[node] + word] >> (category & 31)) & 1) == 1
                    elif np.isnan(fval):
                        if kind == 0:  # missing type None: NaN is read as 0.0
                            go_left = 0.0 <= node_thr[node]
                        else:  # Zero or NaN: the default direction
                            go_left = node_default_left[node]
                    elif kind == 1 and fval == 0.0:  # missing type Zero
                        go_left = node_default_left[node]
                    else:
                        go_left = fval <= node_thr[node]
                    node = node_left[node] if go_left else node_right[node]
                acc[i] += leaf_value[~node]
        for i in range(rows):
            if raw_score:
                out[start + i] = acc[i]
            else:
                out[start + i] = 1.0 / (1.0 + math.exp(-sigmoid * acc[i]))


def _scan_python(X, out, row0, row1, n_trees, table, cat_start, entry_tree, entry_mask, entry_thr, leaf_base,
                 leaf_value, bit_index, de_bruijn, sigmoid, raw_score):
    """out[row0:row1] as _walk_python, by the leaves each split rules out (QuickScorer, Lucchese
    et al. 2015): every tree keeps a 64-bit word of its leaves still possible, in _scan's
    order (a split's first subtree before its second); each split that sends the row to its
    second child clears the leaves of its first. The row's leaf in each tree is then the
    leftmost leaf left. The splits come from lists per feature (`table`): numeric ones whose
    second child is right by ascending threshold (read while threshold < x), those whose second
    child is left by descending threshold (read while threshold >= x), or the list of a NaN (or
    a zero, for missing type Zero); categorical ones from the list of the row's category.
    Indices are unsigned: numba then reads arrays without checking for negative ones."""
    n_cols = X.shape[1]
    alive = np.empty(n_trees, dtype=np.uint64)
    everything = ~np.uint64(0)
    one = np.uint64(1)
    for r in range(row0, row1):
        alive[:] = everything
        for f in range(n_cols):
            x = np.float64(X[r, f])
            if x >= -ZERO_THRESHOLD and x <= ZERO_THRESHOLD:  # LightGBM drops it: 0.0
                x = 0.0
            lists = table[f]
            flags = lists[8]
            if flags:
                if np.isnan(x):
                    for k in range(lists[4], lists[5]):
                        alive[entry_tree[k]] &= entry_mask[k]
                elif x == 0.0 and flags & np.uint64(2):
                    for k in range(lists[6], lists[7]):
                        alive[entry_tree[k]] &= entry_mask[k]
                else:
                    for k in range(lists[0], lists[1]):
                        if entry_thr[k] >= x:
                            break
                        alive[entry_tree[k]] &= entry_mask[k]
                    for k in range(lists[2], lists[3]):
                        if entry_thr[k] < x:
                            break
                        alive[entry_tree[k]] &= entry_mask[k]
            limit = lists[10]
            if limit:
                bucket = lists[9] + limit
                if x > -1.0 and x < np.float64(limit):  # not NaN, int(x) >= 0 and inside a bitset
                    bucket = lists[9] + np.uint64(x)
                for k in range(cat_start[bucket], cat_start[bucket + one]):
                    alive[entry_tree[k]] &= entry_mask[k]
        acc = 0.0
        for t in range(n_trees):
            word = alive[t]
            lowest = word & (np.uint64(0) - word)
            acc += leaf_value[leaf_base[t] + bit_index[(lowest * de_bruijn) >> np.uint64(58)]]
        if raw_score:
            out[r] = acc
        else:
            out[r] = 1.0 / (1.0 + math.exp(-sigmoid * acc))


# compiled by _compile (numba); the plain functions run only where they are called uncompiled
_walk = _walk_python
_scan = _scan_python
