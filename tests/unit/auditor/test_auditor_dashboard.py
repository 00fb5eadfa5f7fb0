"""Auditor: the dashboard's JSON views and page, on InMemoryLedger (no chain, no browser)."""

from __future__ import annotations

import pytest
from auditor_records import run_scenario
from fastapi.testclient import TestClient

from fednode.dashboard import DashboardSource, create_app


@pytest.fixture(scope="module")
def client():
    scenario = run_scenario()
    for index, edge in enumerate(scenario.edges):  # every site evaluates v2: one below 0.5
        view = scenario.ledger.as_sender(edge)
        view.submit_evaluation(scenario.task_id, 2, metric=0.4 + 0.2 * index, num_examples=9)
    source = DashboardSource(scenario.ledger, {"edge-1": scenario.edges[0]})
    return TestClient(create_app(source)), scenario


def test_page_is_self_contained(client):
    # Act
    page = client[0].get("/")
    # Assert
    assert page.status_code == 200
    assert "<script>" in page.text and "http" not in page.text.split("<script>")[1]


def test_consortium_lists_members_roles_and_validators(client):
    # Act
    members = client[0].get("/api/consortium").json()["members"]
    # Assert
    first = members[0]
    assert first["name"] == "edge-1" and first["roles"] == ["EDGE_ROLE"]
    assert first["validator"].lower() == "0x" + "01" * 20
    assert len(members) == 3


def test_tasks_show_state_live_round_and_privacy(client):
    # Act
    [task] = client[0].get("/api/tasks").json()["tasks"]
    # Assert
    assert task["latest_version"] == 2 and task["updates"] == 5
    assert task["live_round"] == {"version": 3, "submitted": 0, "needed": 2}
    assert sorted(task["privacy_spent"].values()) == [0.5, 1.0, 1.0]


def test_task_detail_has_audit_versions_and_site_metrics(client):
    # Act
    task = client[0].get("/api/tasks/1").json()
    # Assert
    assert task["audit_ok"] is True
    assert [v["ok"] for v in task["versions"]] == [True, True, True]
    assert len(task["update_norms"]) == 3
    metrics = task["site_metrics"]
    assert [round(metrics[edge]["2"]["metric"], 3) for edge in client[1].edges] == [0.4, 0.6, 0.8]
    assert [v["acceptance"] for v in task["versions"]] == ["pending", "pending", "accepted"]


def test_trace_and_unknown_digest(client):
    # Arrange
    http, scenario = client
    digest = "0x" + scenario.records[2].digest.hex()
    # Act
    trace = http.get(f"/api/trace/{digest}").json()
    missing = http.get("/api/trace/0x" + "00" * 32)
    # Assert
    assert trace["version"] == 2 and len(trace["lineage"]) == 3
    assert missing.status_code == 404
