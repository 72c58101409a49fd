"""row_sums: each row summed side by side gives the same bits as a running sum of each row
alone (what the scoring form matched scipy's sparse product with)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier import scoring_form
from commsproxy.classifier.scoring_form import row_sums


def _one_by_one(products: np.ndarray, indptr: list[int], width: int) -> np.ndarray:
    out = np.zeros((len(indptr) - 1, width), dtype=products.dtype)
    for i in range(len(indptr) - 1):
        lo, hi = indptr[i], indptr[i + 1]
        if hi > lo:
            out[i] = np.cumsum(products[lo:hi], axis=0)[-1]
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 40) | st.integers(0, 3), min_size=0, max_size=70),
    st.sampled_from([np.float32, np.float64]),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
)
def test_same_bits_as_each_row_alone(
    lengths: list[int], dtype: type, width: int, seed: int
) -> None:
    indptr = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    rng = np.random.default_rng(seed)
    products = (rng.standard_normal((int(indptr[-1]), width)) * 10.0 ** rng.integers(-8, 8)).astype(
        dtype
    )
    out = np.zeros((len(lengths), width), dtype=dtype)
    row_sums(products, indptr, out)
    expected = _one_by_one(products, indptr.tolist(), width)
    assert out.tobytes() == expected.tobytes()


def test_many_rows_go_side_by_side_and_the_long_tail_alone() -> None:
    lengths = [3] * 40 + [200, 0, 1]
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    products = np.linspace(-1, 1, int(indptr[-1]) * 2, dtype=np.float32).reshape(-1, 2) / 3
    out = np.zeros((len(lengths), 2), dtype=np.float32)
    row_sums(products, indptr, out)
    assert len(lengths) > scoring_form._SIDE_BY_SIDE
    assert out.tobytes() == _one_by_one(products, indptr.tolist(), 2).tobytes()
