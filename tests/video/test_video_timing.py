"""Exact frame-rate plans: counts, times, positions t, time bases, parsing."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from vfikit.errors import VfikitError
from vfikit.timeline.timing import Planner, TimingSpec, parse_rate, parse_time, plan_times


def cfr(n: int, rate: Fraction) -> list[Fraction]:
    return [Fraction(i) / rate for i in range(n)]


@pytest.mark.parametrize("factor", [2, 3, 5, 8])
def test_factor_on_constant_rate_video(factor):
    rate = Fraction(25)
    plan = plan_times(cfr(7, rate), TimingSpec.make(factor=factor), end=Fraction(7) / rate)
    assert len(plan) == 7 * factor  # the tail keeps the duration
    assert [o.time for o in plan] == [Fraction(j) / (rate * factor) for j in range(7 * factor)]
    assert [o.index for o in plan] == list(range(7 * factor))
    for o in plan:
        if not o.hold:
            assert o.left == o.index // factor and o.t == Fraction(o.index % factor, factor)
    assert [o.hold for o in plan].count(True) == factor - 1  # after the last source frame
    assert all(o.duration == 1 / (rate * factor) for o in plan)


def test_factor_on_image_sequence_stops_at_last_frame():
    plan = plan_times(cfr(4, Fraction(1)), TimingSpec.make(factor=3))
    assert len(plan) == (4 - 1) * 3 + 1
    assert plan[-1].time == 3 and plan[-1].t == 0 and plan[-1].left == 3 and not plan[-1].hold


def test_ntsc_film_to_60_is_exact():
    rate = Fraction(24000, 1001)
    n = 48
    spec = TimingSpec.make(fps=60)
    plan = plan_times(cfr(n, rate), spec, end=Fraction(n) / rate)
    span = Fraction(n) / rate
    assert len(plan) == -(-span * 60 // 1)  # ceil: every grid point inside [0, span)
    for j, o in enumerate(plan):
        assert o.time == Fraction(j, 60)
        if not o.hold:
            # source frame `left` is the last one at or before the output time
            assert o.left == (o.time * rate).__floor__()
            assert o.t == o.time * rate - o.left


def test_30_to_25_positions():
    plan = plan_times(cfr(30, Fraction(30)), TimingSpec.make(fps=25), end=Fraction(1))
    assert len(plan) == 25
    assert plan[1].time == Fraction(1, 25) and plan[1].left == 1 and plan[1].t == Fraction(1, 5)
    assert plan[5].time == Fraction(1, 5) and plan[5].left == 6 and plan[5].t == 0  # grids meet every 1/5 s


def test_variable_frame_rate_uses_timestamps():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10), Fraction(4, 10)]
    plan = plan_times(times, TimingSpec.make(factor=2), end=Fraction(1, 2))
    assert [o.time for o in plan] == [0, Fraction(1, 20), Fraction(1, 10), Fraction(2, 10), Fraction(3, 10),
                                      Fraction(35, 100), Fraction(4, 10), Fraction(45, 100)]  # fmt: skip


def test_time_base_makes_every_time_an_integer():
    rng = random.Random(1)
    tb = Fraction(1, 90000)
    ticks = [0]
    for _ in range(40):
        ticks.append(ticks[-1] + rng.randint(1000, 9000))
    times = [t * tb for t in ticks]
    end = times[-1] + 3003 * tb
    for spec in (TimingSpec.make(factor=3), TimingSpec.make(fps="30000/1001"), TimingSpec.make(fps=48)):
        base = spec.time_base(tb)
        for o in plan_times(times, spec, end=end):
            assert ((o.time - times[0]) / base).denominator == 1
            assert (o.duration / base).denominator == 1


def test_planner_refuses_non_increasing_times():
    planner = Planner(TimingSpec.make(factor=2))
    planner.add(Fraction(1))
    with pytest.raises(VfikitError, match="must increase"):
        planner.add(Fraction(1))


def test_slowmo_defaults_and_rates():
    spec = TimingSpec.make(slowmo=4)
    assert spec.factor == 4 and spec.output_rate(Fraction(30)) == 30
    assert TimingSpec.make(fps=240, slowmo=4).output_rate(Fraction(30)) == 60
    assert TimingSpec.make(factor=2, slowmo="3/2").output_rate(Fraction(30)) == 40
    assert TimingSpec.make() == TimingSpec(factor=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factor": 1}, "integer >= 2"),
        ({"factor": 1025}, "more than the 1024"),
        ({"slowmo": 2000}, "more than the 1024"),
        ({"factor": 2.5}, "integer >= 2"),
        ({"factor": 2, "fps": 60}, "not both"),
        ({"slowmo": 1}, "greater than 1"),
        ({"slowmo": "2.5"}, "not an integer"),
        ({"fps": "0"}, "positive"),
        ({"fps": "fast"}, "invalid target frame rate 'fast'"),
    ],
)
def test_spec_errors(kwargs, message):
    with pytest.raises(VfikitError, match=message):
        TimingSpec.make(**kwargs)


def test_parse_rate_and_time():
    assert parse_rate("24000/1001") == Fraction(24000, 1001)
    assert parse_rate("30000:1001") == Fraction(30000, 1001)
    assert parse_rate("29.97") == Fraction(2997, 100)
    assert parse_rate(60) == 60
    assert parse_time("1:30") == 90
    assert parse_time("0:01:30.5") == Fraction(181, 2)
    assert parse_time("1001/30000") == Fraction(1001, 30000)
    assert parse_time(2.5) == Fraction(5, 2)
    with pytest.raises(VfikitError, match="negative"):
        parse_time("-1")
    with pytest.raises(VfikitError, match="invalid start"):
        parse_time("soon", what="start")


def test_estimate_count_matches_plan():
    rate = Fraction(30)
    for spec in (TimingSpec.make(factor=3), TimingSpec.make(fps=25), TimingSpec.make(fps="24000/1001")):
        plan = plan_times(cfr(31, rate), spec, end=Fraction(31) / rate)
        assert spec.estimate_count(31, Fraction(31) / rate, tail=True) == len(plan)
        plan = plan_times(cfr(31, rate), spec)
        assert spec.estimate_count(31, Fraction(30) / rate, tail=False) == len(plan)
