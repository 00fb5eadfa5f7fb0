"""All stages: the whole flow on 4 real geth Clique validators (device -> edge -> chain ->
aggregator -> auditor), through the same ``fednode demo`` code the README runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from fednode.auditor.replay import verify_task
from fednode.chain.connect import open_ledger
from fednode.cli.demo_cmd import run_demo
from fednode.cli.main import main as fednode_main
from fednode.codec import encode_params
from fednode.errors import ContractRevertError
from fednode.network.manager import network_down
from fednode.tasks import initial_payload, wearable_task_spec

pytestmark = pytest.mark.integration


def _demo_args(work: Path, **overrides) -> argparse.Namespace:
    settings = dict(dir=work / "run", task="heart", rounds=3, model="logreg", seed=0,
                    validators=4, confirmations=1, report_json=work / "report.json",
                    keep_network=False, aggregation="fedavg", server_optimizer="none",
                    compression=[])
    return argparse.Namespace(**{**settings, **overrides})


@pytest.fixture(scope="module")
def demo_run(geth_binary: Path, tmp_path_factory: pytest.TempPathFactory):
    """Runs a 3-round demo and leaves its validators up for the checks below."""
    del geth_binary
    work = tmp_path_factory.mktemp("demo")
    args = _demo_args(work, task="heart", rounds=3, keep_network=True)
    try:
        report = run_demo(args)
        yield args, report
    finally:
        network_down(args.dir / "network")


def test_demo_report_is_complete_and_audited(demo_run):
    # Arrange
    args, report = demo_run
    # Act
    written = json.loads(args.report_json.read_text())
    # Assert
    assert written["audit"]["ok"] is True
    assert [r["version"] for r in written["rounds"]] == [1, 2, 3]
    assert set(written["federated"]) == {"Cleveland", "Hungary", "Switzerland", "VA Long Beach",
                                         "pooled"}
    assert written["chain"]["validators"] == 4
    assert len(written["chain"]["clique_signers"]) == 4
    assert written["chain"]["updates"] == 4 + 4 * 3  # feature stats + 3 training rounds
    assert written["chain"]["transactions"] > written["chain"]["updates"]
    assert written["chain"]["gas_used"] > 0 and written["chain"]["payload_bytes"] > 0
    assert written["federated"]["pooled"]["accuracy"] > 0.6
    # the final version passes the acceptance gate (quorum rule: more than half of the four
    # hospitals reach the 0.7 floor), evaluated on chain by the contributing edges only
    final = written["evaluations"]["final"]
    assert (final["version"], final["state"]) == (3, "accepted"), written["evaluations"]
    assert set(written["personalized"]) == {"Cleveland", "Hungary", "Switzerland", "VA Long Beach"}
    assert all(0.0 <= site["accuracy"] <= 1.0 for site in written["personalized"].values())


def test_audit_cli_verifies_and_traces_every_version(demo_run, capsys):
    # Arrange
    args, report = demo_run
    network_dir = str(args.dir / "network")
    digest = report["rounds"][-1]["digest"]
    # Act
    verify_code = fednode_main(["audit", "verify", "--network-dir", network_dir,
                                "--task", str(report["task_id"]), "--json"])
    verified = json.loads(capsys.readouterr().out)
    trace_code = fednode_main(["audit", "trace", "--network-dir", network_dir, digest, "--json"])
    trace = json.loads(capsys.readouterr().out)
    # Assert
    assert verify_code == 0 and verified["ok"]
    assert [v["version"] for v in verified["versions"]] == [0, 1, 2, 3]
    assert trace_code == 0 and trace["version"] == 3
    assert [len(v["updates"]) for v in trace["lineage"]] == [0, 4, 4, 4]
    assert len({u["edge"] for v in trace["lineage"] for u in v["updates"]}) == 4


def test_account_without_edge_role_is_refused_with_decoded_error(demo_run):
    # Arrange
    args, report = demo_run
    publisher = open_ledger(args.dir / "network", "publisher")
    payload = encode_params({"w": np.zeros(2, np.float32)})
    # Act
    with pytest.raises(ContractRevertError) as refused:
        publisher.submit_update(report["task_id"], 3, payload, num_examples=1)
    # Assert
    assert refused.value.name == "AccessControlUnauthorizedAccount"
    assert refused.value.args_by_name["account"] == publisher.sender


def test_finished_task_accepts_no_more_updates_and_audit_still_holds(demo_run):
    # Arrange
    args, report = demo_run
    network_dir = args.dir / "network"
    edge = open_ledger(network_dir, "edge-1", node=0)
    payload = encode_params({"w": np.zeros(2, np.float32)})
    # Act
    with pytest.raises(ContractRevertError) as refused:
        edge.submit_update(report["task_id"], 3, payload, num_examples=1)
    audit = verify_task(open_ledger(network_dir, "auditor", node=3), report["task_id"])
    # Assert
    assert refused.value.name.startswith(("UpdateLedger", "TaskRegistry"))
    assert audit.ok


@pytest.mark.slow
def test_wearable_task_runs_through_edges_chain_and_audit(geth_binary, tmp_path):
    # Arrange: the BasicMotions 1D-CNN over 4 wearables, int8-compressed updates through the
    # edges, Multi-Krum + FedAdam on the server.
    del geth_binary
    args = _demo_args(tmp_path, task="wearable", rounds=2, aggregation="krum",
                      server_optimizer="adam", compression=["int8"])
    # Act
    report = run_demo(args)
    # Assert
    assert report["audit"]["ok"] and report["feature_stats_task_id"] is None
    assert report["spec"]["model"] == "cnn1d" and report["spec"]["aggregation"] == "krum"
    assert [r["version"] for r in report["rounds"]] == [1, 2]
    assert report["chain"]["updates"] == 4 * 2
    assert report["spec"]["compression"] == ["int8"]
    dense_payload = len(initial_payload(wearable_task_spec(rounds=2, min_updates=4),
                                        key=jax.random.key(0)))  # float32 CNN, same codec
    assert report["chain"]["update_payload_bytes"] * 4 < 8 * dense_payload  # int8: > 4x smaller
    assert 0.0 <= report["federated"]["pooled"]["accuracy"] <= 1.0


def test_after_the_demo_bootstrap_roles_change_only_by_vote(demo_run):
    # Arrange
    from fednode.chain.constants import AGGREGATOR_ROLE

    args, _ = demo_run
    admin = open_ledger(args.dir / "network", "admin")
    # Act
    with pytest.raises(ContractRevertError) as refused:
        admin.grant_role(AGGREGATOR_ROLE, admin.sender)
    # Assert
    assert refused.value.name == "ConsortiumBootstrapEnded"


def test_network_status_reports_no_signer_drift_after_the_demo(demo_run, capsys):
    # Arrange
    args, _ = demo_run
    # Act
    code = fednode_main(["network", "status", "--dir", str(args.dir / "network"), "--json"])
    status = json.loads(capsys.readouterr().out)
    # Assert
    assert code == 0
    assert status["signer_drift"] == {"missing": [], "extra": [], "clean": True}


@pytest.mark.slow
def test_private_fedprox_task_spends_each_sites_budget_on_chain_and_no_more(geth_binary, tmp_path):
    # Arrange: DP-SGD at epsilon 1 per site (each device calibrates its own noise), FedProx on
    # the devices and equal site weights (bias correction) on the aggregator, all from the spec.
    del geth_binary
    args = _demo_args(tmp_path, rounds=2, dp_epsilon=1.0, accountant="pld", proximal_mu=0.1,
                      example_power=0.0, keep_network=True)
    try:
        # Act
        report = run_demo(args)
        auditor = open_ledger(args.dir / "network", "auditor")
        updates = auditor.read_updates(report["task_id"])
    finally:
        network_down(args.dir / "network")
    # Assert: the published spec says it all, and the contract's per-site sums fit the budget
    spec = report["spec"]
    assert spec["epsilon_budget"] == 1.0 and spec["accountant"] == "pld"
    assert spec["noise_calibration"] == "per_site" and spec["proximal_mu"] == 0.1
    assert spec["aggregation_params"] == {"example_power": 0.0}
    sites = report["privacy"]["sites"]
    assert set(sites) == {"Cleveland", "Hungary", "Switzerland", "VA Long Beach"}
    for site in sites.values():
        assert 0.99 <= site["epsilon_spent"] <= 1.0
        declared = sum(u.epsilon_micro for u in updates if u.edge == site["edge"])
        assert declared == round(site["epsilon_spent"] * 1e6)
        assert site["noise_multiplier"] > 5.0  # epsilon 1 over 2 rounds needs heavy noise
    noise = {name: s["noise_multiplier"] for name, s in sites.items()}
    assert noise["Switzerland"] > noise["Cleveland"]  # 30 rows: every step sees every row
    assert all(u.epsilon_micro > 0 for u in updates) and len(updates) == 4 * 2
    assert report["audit"]["ok"]
