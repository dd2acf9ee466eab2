"""LDAP.Person and LDAP.Group against a private slapd loaded with a generated directory;
the expected outputs come from the same generator, not from the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from peers_lookup import ADMIN, PASSWORD, SUFFIX, SilentUdp, Slapd

from netdistill.lookups.ldap import LdapConfig, LdapLookup

DEPTS = ("Sales", "Engineering", "Support", "Finance")
N = 200


def people() -> list[dict[str, str]]:
    out = []
    for i in range(N):
        person = {
            "uid": f"user{i:03d}",
            "cn": f"User Number {i}",
            "department": DEPTS[i % 4],
            "mail": f"user{i:03d}@example.org",
        }
        if i:
            person["manager"] = f"uid=user{(i - 1) // 10:03d},ou=people,{SUFFIX}"
        out.append(person)
    return out


def ldif() -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: Example\ndc: example\n",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for p in people():
        manager = f"manager: {p['manager']}\n" if "manager" in p else ""
        parts.append(
            f"dn: uid={p['uid']},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
            f"uid: {p['uid']}\ncn: {p['cn']}\nsn: {p['uid']}\n"
            f"departmentNumber: {p['department']}\nmail: {p['mail']}\n{manager}"
        )
    for d in DEPTS:
        members = "".join(
            f"member: uid={p['uid']},ou=people,{SUFFIX}\n" for p in people() if p["department"] == d
        )
        parts.append(
            f"dn: cn={d},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {d}\n"
            f"description: the {d} team\n{members}"
        )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), ldif()) as server:
        yield server


def config(url: str, **extra: object) -> LdapConfig:
    return LdapConfig.model_validate(
        {
            "name": "LDAP",
            "type": "ldap",
            "url": url,
            "bind_dn": ADMIN,
            "password": PASSWORD,
            "base_dn": SUFFIX,
            "functions": [
                {
                    "name": "Person",
                    "inputs": {"uid": "string"},
                    "filter": "(&(objectClass=person)(uid={uid}))",
                    "outputs": {
                        "department": "string",
                        "cn": "string",
                        "mail": "string",
                        "manager": "string",
                    },
                    "attributes": {"department": "departmentNumber"},
                },
                {
                    "name": "Group",
                    "inputs": {"member": "string"},
                    "filter": "(&(objectClass=groupOfNames)(member={member}))",
                    "outputs": {"group": "string", "about": "string"},
                    "attributes": {"group": "cn", "about": "description"},
                },
            ],
            **extra,
        }
    )


def test_person_outputs_equal_the_directory(slapd: Slapd) -> None:
    ldap = LdapLookup(config(slapd.url, concurrency=4))
    try:
        truth = people()
        keys = [p["uid"] for p in truth] + ["nobody", "user*", "user0)(uid=*", None]
        out = ldap.call("Person", pa.table({"uid": pa.array(keys, pa.string())}))
        expected = [
            {k: p.get(k) for k in ("department", "cn", "mail", "manager")} for p in truth
        ] + [dict.fromkeys(("department", "cn", "mail", "manager"))] * 4
        assert out.select(["department", "cn", "mail", "manager"]).to_pylist() == expected
        # "user*" and the injection attempt are escaped: they match no one, not everyone
        c = ldap.counters
        assert (c.calls, c.keys, c.misses, c.timeouts, c.errors) == (1, N + 4, 4, 0, 0)
        assert out.column("_answered").to_pylist() == [True] * (N + 4)
        # the manager's DN feeds Group through member
        groups = ldap.call("Group", pa.table({"member": [truth[5]["manager"], "uid=x"]}))
        assert groups.select(["group", "about"]).to_pylist() == [
            {"group": "Sales", "about": "the Sales team"},
            {"group": None, "about": None},
        ]
    finally:
        ldap.close()


def test_unreachable_server_is_counted_at_once() -> None:
    with SilentUdp() as nothing:  # a port where no TCP server listens
        ldap = LdapLookup(config(f"ldap://127.0.0.1:{nothing.port}", timeout_s=1.0))
        start = time.monotonic()
        out = ldap.call("Person", pa.table({"uid": [f"user{i:03d}" for i in range(50)]}))
        elapsed = time.monotonic() - start
    assert out.column("department").null_count == 50
    assert ldap.counters.errors == 50 and ldap.counters.by_reason == {"unreachable": 50}
    assert out.column("_answered").to_pylist() == [False] * 50
    assert elapsed < 1.0
    ldap.close()


def test_config_errors_name_the_function(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="placeholders"):
        config("ldap://127.0.0.1:1").model_copy()  # valid
        LdapConfig.model_validate(
            {
                "name": "LDAP",
                "url": "ldap://127.0.0.1:1",
                "base_dn": SUFFIX,
                "functions": [
                    {
                        "name": "P",
                        "inputs": {"uid": "string"},
                        "filter": "(cn={x})",
                        "outputs": {"cn": "string"},
                    }
                ],
            }
        )
    assert config("ldap://127.0.0.1:1").functions()[0].notation() == (
        "LDAP.Person(uid:string) → (department:string, cn:string, mail:string, manager:string)"
    )
