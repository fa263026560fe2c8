"""Capture-rule matching: time per event at 10, 1,000 and 100,000 rules, indexed vs a linear scan.

    .venv/bin/python bench/rules.py [--repeats 7]

Why: DESIGN §4 promises that an event's matching cost does not grow with the number of rules
(Orchestrator caps rules at 10 × 100 per channel; threadline does not). Target: the indexed
matcher's time per event at 100,000 rules ≤ 1.5 × its time at 10 rules.

What runs: ``RuleIndex.build`` over configurations validated by the real model
(``parse_configuration``), then ``RuleIndex.match`` on a fixed mix of events — 80% from a
customer to one of the account numbers a rule names (the bidirectional pattern), 10% the
reverse direction, 10% traffic no rule captures — and, on the same events, ``linear_match``
(every rule of every configuration, as a scan would). Each timing is the median of
``--repeats`` runs of a batch, the sizes interleaved within each repeat; the linear batch is
smaller at large sizes so a run stays short, and results are per event. Times are CPU time of
this process (``time.process_time``), so other processes on the machine do not count as ours.
Pure CPU: the matcher does no I/O, so no Redis database is taken.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.capture.configuration import Configuration, parse_configuration  # noqa: E402
from workers.capture.index import RuleIndex, linear_match  # noqa: E402

SIZES = (10, 1_000, 100_000)
RULES_PER_CONFIG = 1_000  # configurations hold up to this many SMS rules each


@dataclass(frozen=True)
class Versioned:
    config: Configuration
    version: int = 1


def account_number(i: int) -> str:
    return f"+1800{i:07d}"


def build_configs(n_rules: int) -> tuple[list[Versioned], list[str]]:
    """``n_rules`` SMS rules: pairs of bidirectional rules, one account number per pair."""
    numbers = build_configs_numbers(n_rules)
    rules = []
    for number in numbers:
        rules += [{"from": number, "to": "*"}, {"from": "*", "to": number}]
    rules = rules[:n_rules]
    configs = []
    for c, start in enumerate(range(0, len(rules), RULES_PER_CONFIG)):
        configs.append(Versioned(parse_configuration({
            "id": f"c{c}", "displayName": f"c{c}", "description": "",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
            "channelSettings": {"SMS": {"captureRules": rules[start:start + RULES_PER_CONFIG]}},
        })))
    return configs, numbers


def build_configs_numbers(n_rules: int) -> list[str]:
    """The account numbers ``build_configs(n_rules)`` names (one per two rules)."""
    return [account_number(i) for i in range(max(1, n_rules // 2))]


def events(numbers: list[str], n: int, seed: int = 7) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        customer = f"+1415{rnd.randrange(10**7):07d}"
        roll = rnd.random()
        number = rnd.choice(numbers)
        if roll < 0.8:
            out.append((customer, number))
        elif roll < 0.9:
            out.append((number, customer))
        else:
            out.append((customer, f"+1212{rnd.randrange(10**7):07d}"))
    return out


def run_batch(fn, batch: list[tuple[str, str]]) -> float:
    """Seconds per event for one run of the batch."""
    start = time.process_time()
    for frm, to in batch:
        fn(frm, to)
    return (time.process_time() - start) / len(batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--events", type=int, default=10_000, help="indexed batch size")
    args = parser.parse_args()

    setups = []
    for size in SIZES:
        t0 = time.perf_counter()
        configs, numbers = build_configs(size)
        t1 = time.perf_counter()
        index = RuleIndex.build(configs)
        t2 = time.perf_counter()
        batch = events(numbers, args.events)
        linear_batch = batch[: max(20, min(len(batch), 1_000_000 // size))]
        # the two agree on every event checked (a benchmark of a wrong answer is no use)
        for frm, to in linear_batch[:200]:
            assert [(m.config_id, m.rule_index) for m in index.match("SMS", frm, to)] == \
                linear_match(configs, "SMS", frm, to)
        setups.append((size, configs, index, batch, linear_batch, t1 - t0, t2 - t1))
    # The floor any hash index pays: two plain dict lookups (the event's from and to) in a dict
    # with as many addresses as the index holds. Its growth is the memory hierarchy's, not ours.
    floors = {size: {n: True for n in build_configs_numbers(size)} for size in SIZES}

    # Interleaved: every repeat times every size, so a busy machine slows all sizes alike.
    indexed: dict[int, list[float]] = {s[0]: [] for s in setups}
    linear: dict[int, list[float]] = {s[0]: [] for s in setups}
    floor: dict[int, list[float]] = {s[0]: [] for s in setups}
    for _ in range(args.repeats):
        for size, configs, index, batch, linear_batch, _, _ in setups:
            indexed[size].append(run_batch(lambda f, t, i=index: i.match("SMS", f, t), batch))
            linear[size].append(run_batch(
                lambda f, t, c=configs: linear_match(c, "SMS", f, t), linear_batch))
            floor[size].append(run_batch(lambda f, t, d=floors[size]: (d.get(f), d.get(t)), batch))

    base = statistics.median(indexed[SIZES[0]])
    floor_base = statistics.median(floor[SIZES[0]])
    print(f"{'rules':>8} {'configs':>7} {'indexed µs/event':>17} {'vs 10 rules':>11} "
          f"{'linear µs/event':>16} {'linear/indexed':>14} {'2 dict gets µs':>14} {'vs 10':>6} "
          f"{'validate s':>10} {'build s':>8}")
    for size, configs, _, _, _, validate_s, build_s in setups:
        ix, ln = statistics.median(indexed[size]), statistics.median(linear[size])
        fl = statistics.median(floor[size])
        print(f"{size:>8,} {len(configs):>7} {ix * 1e6:>17.2f} {ix / base:>10.2f}x "
              f"{ln * 1e6:>16.2f} {ln / ix:>13.1f}x {fl * 1e6:>14.2f} {fl / floor_base:>5.1f}x "
              f"{validate_s:>10.2f} {build_s:>8.3f}")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} during the run "
          "(a loaded machine evicts the large index from cache: the 100,000-rule row suffers most)")
    flat = statistics.median(indexed[SIZES[-1]]) / base
    verdict = "PASS" if flat <= 1.5 else "FAIL"
    print(f"indexed 100,000 / 10 rules = {flat:.2f}x (target ≤ 1.5x): {verdict}; "
          f"median of {args.repeats} interleaved runs, {args.events:,} events per indexed run")
    return 0 if flat <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
