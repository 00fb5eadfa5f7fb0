"""Auditor: per-site evaluations in the trace, the HTML report and its figures, with the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest
from auditor_records import SPEC, run_scenario

from fednode.auditor.html_report import render_html
from fednode.auditor.plots import plot_learning, plot_site_metrics, plot_update_norms
from fednode.auditor.report_data import collect_report_data, site_metrics
from fednode.auditor.trace import render_trace, trace_digest


@pytest.fixture(scope="module")
def scenario():
    """The auditor scenario with a 0.6 floor; v1 evaluated by all, v2 by two edges, both below
    the floor (with 3 sites the quorum rule needs 2 above it: v2 can no longer be accepted)."""
    scenario = run_scenario(replace(SPEC, metric_floor=0.6))
    for version, metrics in ((1, (0.7, 0.65, 0.9)), (2, (0.55, 0.5))):
        for edge, metric in zip(scenario.edges, metrics, strict=False):
            view = scenario.ledger.as_sender(edge)
            view.submit_evaluation(scenario.task_id, version, metric=metric, num_examples=10,
                                   secondary=None if edge == scenario.edges[0] else 0.5)
    return scenario


def test_trace_lists_each_versions_evaluations_and_gate(scenario):
    # Act
    trace = trace_digest(scenario.ledger, scenario.records[2].digest)
    # Assert
    v0, v1, v2 = trace.lineage
    assert (v0.acceptance, v1.acceptance, v2.acceptance) == ("pending", "accepted", "rejected")
    assert [(e.edge, e.metric) for e in v2.evaluations] == [
        (scenario.edges[0], 0.55), (scenario.edges[1], 0.5)
    ]
    assert v1.evaluations[0].secondary is None and v1.evaluations[1].secondary == 0.5
    assert all(e.block_number > 0 for e in v1.evaluations)
    text = render_trace(trace)
    assert "gate rejected (more than 50% of the sites reach 0.6)" in text
    expected = f"by edge {scenario.edges[2]}: metric 0.9000, second metric 0.5000 on 10 examples"
    assert expected in text


def test_trace_of_an_older_version_leaves_later_evaluations_out(scenario):
    trace = trace_digest(scenario.ledger, scenario.records[1].digest)
    assert {row["version"] for row in trace.evaluations} == {1}
    assert trace.lineage[-1].acceptance == "accepted"


def test_report_data_and_gate_per_version(scenario):
    # Act
    data = collect_report_data(scenario.ledger, scenario.task_id)
    # Assert
    assert data.sites == scenario.edges
    assert [(g.version, g.state.value) for g in data.acceptance()] == [
        (1, "accepted"), (2, "rejected")
    ]
    series = site_metrics(data.evaluations)
    assert series[scenario.edges[2]] == {1: (0.9, 0.5)}
    assert data.acceptance()[1].missing == (scenario.edges[2],)


def test_html_report_shows_the_gate_and_learning_curves(scenario):
    data = collect_report_data(scenario.ledger, scenario.task_id)
    page = render_html(data)
    assert "Per-site evaluations and acceptance gate" in page
    assert "<td class=ok>accepted</td>" in page and "<td class=bad>rejected</td>" in page
    assert "learning curves per site (on-chain evaluations)" in page
    assert "update norm per site and version" in page
    for plot in (plot_learning, plot_site_metrics, plot_update_norms):
        title, png = plot(data)
        assert png.startswith(b"\x89PNG") and title


def test_report_without_evaluations_says_so():
    scenario = run_scenario()
    data = collect_report_data(scenario.ledger, scenario.task_id)
    title, _ = plot_learning(data)
    assert title == "learning curves per site: no evaluations on chain"
    assert data.acceptance() == []
