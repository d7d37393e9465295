"""bench/machine.py: what a report says of the machine it ran on."""

from __future__ import annotations

import os

from bench.machine import load_average, machine, machine_line


def test_the_machine_s_facts_in_a_report_s_order() -> None:
    facts = machine()
    assert list(facts) == [
        *("nproc", "cpu", "kernel", "python", "mosquitto", "aiomqtt", "paho-mqtt", "anyio"),
        *("sqlite", "drivesim"),
    ]
    assert facts["nproc"] == str(os.cpu_count())
    assert facts["mosquitto"][0].isdigit()  # the broker's own version line, read
    assert facts["drivesim"] != "?"  # the commit of this checkout


def test_the_facts_as_one_line() -> None:
    assert machine_line({"nproc": "2", "cpu": "AMD EPYC"}) == "nproc 2, cpu AMD EPYC"
    assert machine_line().startswith(f"nproc {os.cpu_count()}, cpu ")
    assert load_average() >= 0
