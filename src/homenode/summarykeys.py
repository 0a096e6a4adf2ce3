"""What each ``summary.json`` key means, with its unit: one line each, for the simulate
table, report.html and the README's key table (a test keeps them in step)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyInfo:
    unit: str
    meaning: str


KEYS: dict[str, KeyInfo] = {
    "duration_s": KeyInfo("s", "simulated time run"),
    "sim_speed": KeyInfo("sim s / wall s", "simulated seconds per wall second (the only "
                         "figure that differs between two runs of one scenario and seed)"),
    "throughput_vs_ideal": KeyInfo("ratio", "total progress over the progress with all "
                                   "memory local and no overload (1 = ideal)"),
    "throughput_vs_bound": KeyInfo("ratio", "total progress over the true upper bound "
                                   "(the best whole homes each tick, free instant "
                                   "migration; <= 1)"),
    "overhead_cpu_s": KeyInfo("core-s", "CPU the balancer itself cost (scans, hinting "
                              "faults, copies, daemon ticks), charged to the run"),
    "overhead": KeyInfo("core-s", "overhead_cpu_s by client and kind of work"),
    "mean_locality": KeyInfo("0..1", "memory-weighted share of memory on the home node, "
                             "mean over the last half of the run"),
    "p5_locality": KeyInfo("0..1", "5th percentile of locality over clients and samples, "
                           "last half"),
    "max_imbalance_settled": KeyInfo("load", "largest max - min node load (entitled CPU / "
                                     "cores) after the last event settled"),
    "convergence_max_s": KeyInfo("s", "the slowest event's time until every client is "
                                 ">= 95 % local and imbalance <= 10 %, holding 10 s "
                                 "(— if one never converged)"),
    "home_changes": KeyInfo("moves", "home changes other than initial placement"),
    "max_home_changes_per_client_per_10min": KeyInfo(
        "moves", "most home changes of one client in any 10-minute window"),
    "pages_migrated": KeyInfo("4 KiB pages", "pages actually moved"),
    "gib_migrated": KeyInfo("GiB", "memory actually moved"),
    "clients_seen": KeyInfo("clients", "clients that ran at some point"),
    "reservation_violations": KeyInfo("client-samples", "samples in which a client got less "
                                      "than min(reservation, demand)"),
    "pool_limit_violations": KeyInfo("pool-samples", "samples in which a pool's clients got "
                                     "more than its limit"),
    "min_entitlement_share": KeyInfo("ratio", "lowest ratio, over clients, of CPU received "
                                     "to CPU entitled over the run (fairness)"),
    "wide_max_distance_settled": KeyInfo("SLIT", "largest distance between two slices of "
                                         "one wide VM, last half"),
    "affinity_groups_together": KeyInfo("0..1", "share of affinity groups on a single "
                                        "node, last half"),
}

# Shown by `homenode simulate` for every run.
CORE = ("duration_s", "sim_speed", "throughput_vs_ideal", "throughput_vs_bound",
        "overhead_cpu_s", "mean_locality", "p5_locality",
        "max_imbalance_settled", "convergence_max_s", "home_changes",
        "max_home_changes_per_client_per_10min", "gib_migrated")
# Shown when the run has them (the scenario has wide VMs, groups, pools) or expects them.
SCENARIO_SPECIFIC = ("wide_max_distance_settled", "affinity_groups_together",
                     "min_entitlement_share", "reservation_violations",
                     "pool_limit_violations")


def info(key: str) -> KeyInfo | None:
    return KEYS.get(key)
