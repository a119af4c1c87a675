"""Local keys: a pure function of the secret, epoch, user and tenant; 32 bytes; a key_id that
names the key without revealing it and changes with every input."""

from __future__ import annotations

import base64

from gateway.auth.local_keys import derive_local_key

SECRET = "local-key-secret-for-tests-0123456789abcdef"


def test_the_same_inputs_derive_the_same_32_byte_key() -> None:
    first = derive_local_key(SECRET, 1, "alice", "acme")
    again = derive_local_key(SECRET, 1, "alice", "acme")
    assert first == again
    assert len(first.key) == 32
    answer = first.as_json(3600)
    assert base64.urlsafe_b64decode(str(answer["key"]) + "=") == first.key
    assert answer["key_id"] == first.key_id
    assert answer["expires_in"] == 3600


def test_every_input_changes_the_key_and_its_id() -> None:
    base = derive_local_key(SECRET, 1, "alice", "acme")
    others = [
        derive_local_key(SECRET + "x", 1, "alice", "acme"),
        derive_local_key(SECRET, 2, "alice", "acme"),
        derive_local_key(SECRET, 1, "bob", "acme"),
        derive_local_key(SECRET, 1, "alice", "globex"),
    ]
    assert len({base.key, *(o.key for o in others)}) == 5
    assert len({base.key_id, *(o.key_id for o in others)}) == 5


def test_user_and_tenant_cannot_be_shifted_into_each_other() -> None:
    # Joined as plain text, ("a|b", "c") and ("a", "b|c") would read the same.
    for (user, tenant), (other_user, other_tenant) in [
        (("a|b", "c"), ("a", "b|c")),
        (('a","b', "c"), ("a", 'b","c')),
    ]:
        first = derive_local_key(SECRET, 1, user, tenant)
        assert first.key != derive_local_key(SECRET, 1, other_user, other_tenant).key


def test_the_key_id_names_the_epoch_and_not_the_key() -> None:
    local = derive_local_key(SECRET, 7, "alice", "acme")
    epoch, _, digest = local.key_id.partition(".")
    assert epoch == "7"
    assert digest
    assert digest not in base64.urlsafe_b64encode(local.key).decode()
    assert "key=" not in repr(local)
