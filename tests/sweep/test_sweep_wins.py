"""Wins, ties and losses, and which throughput they are counted by."""

from __future__ import annotations

from homenode.sweep import report, wins


def row(label, policy, thr, bound=None, seed=1, family="traces", day=0, shape="2x12"):
    r = {"label": label, "policy": policy, "seed": seed, "grid": "", "status": "ok",
         "throughput_vs_ideal": thr, "family": family, "set": "bb", "day": day,
         "shape": shape, "home_changes_per_client_per_10min": 0.1, "gib_migrated": 1.0}
    if bound is not None:
        r["throughput_vs_bound"] = bound
    return r


def test_counts_ties_within_the_tolerance_and_the_worst_case():
    t = [row("a", "esxi", 0.90), row("a", "static", 0.95),            # loss, 0.947
         row("b", "esxi", 0.99), row("b", "static", 0.9895),          # tie (0.05 %)
         row("c", "esxi", 1.00), row("c", "static", 0.80),            # win
         row("d", "esxi", 0.50)]                                      # no peer: skipped
    got = {(x.policy, x.peer): x for x in wins.tallies(t)}
    e = got[("esxi", "static")]
    assert (e.wins, e.ties, e.losses) == (1, 1, 1)
    assert e.worst_ratio == round(0.90 / 0.95, 4) and e.worst_case == "a seed 1"
    s = got[("static", "esxi")]
    assert (s.wins, s.ties, s.losses) == (1, 1, 1) and s.worst_case == "c seed 1"


def test_the_bound_is_used_when_every_row_has_it_else_ideal_and_the_report_says_so():
    with_bound = [row("a", "esxi", 0.9, 0.99), row("a", "static", 0.95, 0.97)]
    assert wins.metric(with_bound) == wins.BOUND
    e = next(x for x in wins.tallies(with_bound) if x.policy == "esxi")
    assert e.wins == 1                       # by the bound esxi wins, by ideal it loses
    assert "no <code>throughput_vs_bound</code>" not in report.render("x", with_bound)
    mixed = [*with_bound, row("b", "esxi", 0.9), row("b", "static", 0.9)]
    assert wins.metric(mixed) == wins.IDEAL
    assert "no <code>throughput_vs_bound</code>" in report.render("x", mixed)


def test_best_peer_leaves_the_oracle_out():
    assert wins.best_peer_ratio({"esxi": 0.9, "static": 0.8, "optimal": 1.0}) == 0.9 / 0.8
    assert wins.best_peer_ratio({"esxi": 0.9, "optimal": 1.0}) is None
