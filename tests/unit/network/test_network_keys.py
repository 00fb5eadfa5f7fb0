"""Chain: key files, keystores and node keys of a local consortium (no geth)."""

from __future__ import annotations

import json
import stat

import pytest
from eth_account import Account

from fednode.errors import FednodeValueError, NetworkError
from fednode.network.keys import (
    KEYSTORE_SCRYPT_N,
    address_of,
    default_account_names,
    enode_url,
    ensure_account_keys,
    generate_private_key,
    move_legacy_password,
    node_public_key,
    read_key_file,
    write_key_file,
    write_node_key,
    write_validator_keystore,
)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_owner_only_hex_and_reads_back(tmp_path):
    # Arrange
    key = generate_private_key()
    path = tmp_path / "keys" / "admin.key"

    # Act
    write_key_file(path, key)

    # Assert
    assert _mode(path) == 0o600
    assert path.read_text() == key.hex() + "\n"
    assert read_key_file(path) == key


def test_read_key_file_tolerates_a_0x_prefix(tmp_path):
    # Arrange
    key = generate_private_key()
    path = tmp_path / "k.key"
    path.write_text("0x" + key.hex())

    # Act / Assert
    assert read_key_file(path) == key


@pytest.mark.parametrize("content", ["abcd", "not hex at all", ""], ids=["short", "text", "empty"])
def test_read_key_file_rejects_anything_but_32_bytes(tmp_path, content):
    # Arrange
    path = tmp_path / "bad.key"
    path.write_text(content)

    # Act / Assert
    with pytest.raises(NetworkError):
        read_key_file(path)


def test_default_account_names_are_the_roles_then_the_edges():
    # Act
    names = default_account_names(3)

    # Assert
    assert names == ["admin", "publisher", "aggregator", "auditor", "edge-1", "edge-2", "edge-3"]


def test_ensure_account_keys_creates_missing_keys_and_keeps_existing_ones(tmp_path):
    # Arrange
    first = ensure_account_keys(tmp_path / "keys", ["admin", "edge-1"])

    # Act
    second = ensure_account_keys(tmp_path / "keys", ["admin", "edge-1", "auditor"])

    # Assert
    assert second["admin"] == first["admin"]
    assert second["edge-1"] == first["edge-1"]
    assert len(set(second.values())) == 3
    assert second["auditor"] == address_of(read_key_file(tmp_path / "keys" / "auditor.key"))


@pytest.mark.parametrize("names", [["admin", "admin"], ["../escape"], ["Admin"]])
def test_ensure_account_keys_rejects_bad_names(tmp_path, names):
    # Act / Assert
    with pytest.raises(FednodeValueError):
        ensure_account_keys(tmp_path / "keys", names)


def test_validator_keystore_decrypts_with_its_password_file(tmp_path):
    # Arrange
    key, datadir, secret = generate_private_key(), tmp_path / "node", tmp_path / "secrets" / "pw"

    # Act
    path = write_validator_keystore(datadir, key, "s3cret", password_file=secret,
                                    insecure_test_scrypt_n=2**10)

    # Assert
    keystore = json.loads(path.read_text())
    password = secret.read_text().strip()
    assert path.parent == datadir / "keystore"
    assert path.name.startswith("UTC--") and path.name.endswith(keystore["address"].lower())
    assert _mode(path) == 0o600 and _mode(secret) == 0o600 and _mode(secret.parent) == 0o700
    assert bytes(Account.decrypt(keystore, password)) == key
    assert list(datadir.rglob("*pass*")) == []


def test_validator_keystore_uses_geths_standard_scrypt_by_default(tmp_path):
    # Act
    path = write_validator_keystore(tmp_path / "node", generate_private_key(), "pw",
                                    password_file=tmp_path / "secrets" / "pw")

    # Assert
    params = json.loads(path.read_text())["crypto"]["kdfparams"]
    assert params["n"] >= 2**18 == KEYSTORE_SCRYPT_N


def test_validator_password_never_lands_beside_its_keystore(tmp_path):
    # Act / Assert
    with pytest.raises(NetworkError, match="must not sit in the datadir"):
        write_validator_keystore(tmp_path, generate_private_key(), "pw",
                                 password_file=tmp_path / "password.txt",
                                 insecure_test_scrypt_n=2**10)


def test_validator_password_file_is_created_exclusively(tmp_path):
    # Arrange: something (a planted link) already sits where the password goes
    secret = tmp_path / "secrets" / "pw"
    secret.parent.mkdir()
    secret.symlink_to(tmp_path / "elsewhere")

    # Act / Assert
    with pytest.raises(NetworkError, match="already exists"):
        write_validator_keystore(tmp_path / "node", generate_private_key(), "pw",
                                 password_file=secret, insecure_test_scrypt_n=2**10)
    assert not (tmp_path / "elsewhere").exists()


def test_legacy_password_beside_the_keystore_moves_to_the_secrets_folder(tmp_path):
    # Arrange
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "password.txt").write_text("old\n")

    # Act
    move_legacy_password(tmp_path / "node", tmp_path / "secrets" / "pw")

    # Assert
    assert not (tmp_path / "node" / "password.txt").exists()
    assert (tmp_path / "secrets" / "pw").read_text() == "old\n"
    assert _mode(tmp_path / "secrets" / "pw") == 0o600


def test_node_key_is_where_geth_reads_it_and_names_the_enode(tmp_path):
    # Arrange
    key = generate_private_key()

    # Act
    path = write_node_key(tmp_path, key)
    url = enode_url(key, host="127.0.0.1", port=30311)

    # Assert
    assert path == tmp_path / "geth" / "nodekey"
    assert path.read_text() == key.hex()
    assert url == f"enode://{node_public_key(key)}@127.0.0.1:30311"
    assert len(node_public_key(key)) == 128


def test_key_files_are_never_written_through_a_planted_temporary_name(tmp_path):
    # Arrange: a local attacker plants a link where a naive writer would put its temp file
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "admin.key.tmp").symlink_to(victim)

    # Act
    write_key_file(tmp_path / "keys" / "admin.key", generate_private_key())

    # Assert
    assert victim.read_text() == "untouched"
    assert _mode(tmp_path / "keys" / "admin.key") == 0o600
