import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from homenode.cpu import share_cpu


def test_uncontended_everyone_gets_demand():
    got = share_cpu(np.array([8.0]), np.zeros(3, np.int64), np.array([1.0, 2.0, 3.0]),
                    np.ones(3), np.zeros(3))
    assert got.tolist() == [1.0, 2.0, 3.0]


def test_contended_split_by_shares_with_water_filling():
    # 6 cores; wants 1, 5, 5; equal shares -> 1 is satisfied, the rest split 2.5/2.5
    got = share_cpu(np.array([6.0]), np.zeros(3, np.int64), np.array([1.0, 5.0, 5.0]),
                    np.ones(3), np.zeros(3))
    assert np.allclose(got, [1.0, 2.5, 2.5])


def test_shares_weight_the_split():
    got = share_cpu(np.array([4.0]), np.zeros(2, np.int64), np.array([4.0, 4.0]),
                    np.array([3.0, 1.0]), np.zeros(2))
    assert np.allclose(got, [3.0, 1.0])


def test_reservation_served_first():
    # 4 cores; the reserved client has few shares but keeps its 3 reserved cores
    got = share_cpu(np.array([4.0]), np.zeros(2, np.int64), np.array([4.0, 4.0]),
                    np.array([1.0, 100.0]), np.array([3.0, 0.0]))
    assert got[0] >= 3.0 - 1e-9
    assert np.isclose(got.sum(), 4.0)


def test_unplaced_clients_get_nothing():
    got = share_cpu(np.array([4.0]), np.array([-1, 0]), np.array([2.0, 2.0]), np.ones(2),
                    np.zeros(2))
    assert got.tolist() == [0.0, 2.0]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_never_more_than_want_or_capacity(data):
    groups = data.draw(st.integers(1, 4))
    n = data.draw(st.integers(1, 12))
    cap = np.array(data.draw(st.lists(st.floats(0, 32), min_size=groups, max_size=groups)))
    group = np.array(data.draw(st.lists(st.integers(-1, groups - 1), min_size=n, max_size=n)))
    want = np.array(data.draw(st.lists(st.floats(0, 16), min_size=n, max_size=n)))
    shares = np.array(data.draw(st.lists(st.floats(1, 4000), min_size=n, max_size=n)))
    res = np.array(data.draw(st.lists(st.floats(0, 4), min_size=n, max_size=n)))
    got = share_cpu(cap, group, want, shares, res)
    assert (got <= want + 1e-6).all() and (got >= 0).all()
    ok = group >= 0
    per_group = np.bincount(group[ok], got[ok], groups)
    assert (per_group <= cap + 1e-6).all()
    # work-conserving: a group either satisfies everyone or hands out all it has
    wanted = np.bincount(group[ok], want[ok], groups)
    assert np.allclose(per_group, np.minimum(wanted, cap), atol=1e-6)
