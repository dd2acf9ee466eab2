"""Licence files: signature and verification, and every way a licence is refused
(``licence/signed.py``), each with the message that says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from licence_kit import TEST_KEY_ID, TestVendor

from netdistill.errors import LicenceError
from netdistill.licence.keys import VENDOR_KEYS
from netdistill.licence.signed import verify
from netdistill.licence.terms import COMMUNITY, Licence, combined

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def vendor() -> TestVendor:
    return TestVendor()


def check(vendor: TestVendor, text: str, **kw: object) -> Licence:
    return verify(text, trusted_keys=vendor.trusted, now=NOW, **kw).licence  # type: ignore[arg-type]


def test_a_licence_verifies_with_its_terms(vendor: TestVendor) -> None:
    text = vendor.issue(
        "ACME-1", now=NOW, gatherers=10, exporters={"netflow": 200, "*": 30},
        features=("merge", "scale-out"), customer="ACME Networks",
    )  # fmt: skip
    licence = check(vendor, text)
    assert licence.licence_id == "ACME-1" and licence.customer == "ACME Networks"
    assert licence.gatherers == 10 and licence.exporters == {"netflow": 200, "*": 30}
    assert licence.features == ("merge", "scale-out")
    assert licence.expires_at == NOW + timedelta(days=365)
    # a licence that went through a Windows mail client still verifies
    assert check(vendor, text.replace("\n", "\r\n")).licence_id == "ACME-1"
    # a note above the blocks is not part of what is signed
    assert check(vendor, "Dear customer, your licence:\n\n" + text).licence_id == "ACME-1"


def test_the_vendor_key_is_built_in_and_read_only() -> None:
    assert list(VENDOR_KEYS) == ["vendor-2026"]
    with pytest.raises(TypeError):
        VENDOR_KEYS["mine"] = VENDOR_KEYS["vendor-2026"]  # type: ignore[index]


def test_every_modified_byte_of_the_body_is_refused(vendor: TestVendor) -> None:
    text = vendor.issue("ACME-2", now=NOW, gatherers=2)
    start = text.index("{")
    end = text.index("-----END NETDISTILL LICENCE-----") - 1
    refused = 0
    for position in range(start, end):
        original = text[position]
        changed = text[:position] + ("x" if original != "x" else "y") + text[position + 1 :]
        with pytest.raises(LicenceError) as caught:
            check(vendor, changed)
        assert "signature is not valid for key 'test-key'" in str(caught.value)
        refused += 1
    assert refused == end - start > 100
    # the one everyone tries: more gatherers
    more = text.replace('"gatherers": 2', '"gatherers": 200')
    with pytest.raises(LicenceError, match="changed after it was signed"):
        check(vendor, more)


def test_a_licence_signed_by_another_key_is_refused(vendor: TestVendor) -> None:
    other = TestVendor()  # same key id, another key
    with pytest.raises(LicenceError) as caught:
        check(vendor, other.issue("FORGED", now=NOW))
    assert str(caught.value) == (
        "licence signature is not valid for key 'test-key': the licence was changed after it "
        "was signed, or it was signed by another key; install the file as the vendor sent it"
    )
    # a key id nobody trusts
    stranger = TestVendor("my-own-key")
    with pytest.raises(LicenceError) as caught:
        check(vendor, stranger.issue("SELF-MADE", now=NOW))
    assert str(caught.value) == (
        "licence signed with key 'my-own-key', which this netdistill does not trust "
        "(it trusts: test-key); ask the vendor for a licence signed with its key"
    )
    # and the product as shipped trusts no test key
    with pytest.raises(LicenceError, match=r"does not trust \(it trusts: vendor-2026\)"):
        verify(vendor.issue("T", now=NOW), trusted_keys=VENDOR_KEYS, now=NOW)


def test_expired_and_not_yet_valid_licences_are_refused(vendor: TestVendor) -> None:
    expired = vendor.issue("OLD", now=NOW - timedelta(days=400), days=365)
    with pytest.raises(LicenceError) as caught:
        check(vendor, expired)
    assert str(caught.value) == (
        "licence OLD expired on 2026-04-27T00:00:00Z (now 2026-06-01T00:00:00Z); "
        "ask the vendor for a renewal"
    )
    future = vendor.issue("NEXT", now=NOW, starts_in_days=30)
    with pytest.raises(LicenceError) as caught:
        check(vendor, future)
    assert str(caught.value) == (
        "licence NEXT is not valid yet: it is valid from 2026-07-01T00:00:00Z "
        "(now 2026-06-01T00:00:00Z); install it from that time on"
    )
    # read back after install, dates aside, both are still genuine
    assert verify(expired, trusted_keys=vendor.trusted, now=NOW, check_dates=False)


def test_a_licence_for_another_installation_is_refused(vendor: TestVendor) -> None:
    text = vendor.issue("BOUND", now=NOW, install_id="1111-aaaa")
    assert check(vendor, text, install_id="1111-aaaa").install_id == "1111-aaaa"
    with pytest.raises(LicenceError) as caught:
        check(vendor, text, install_id="2222-bbbb")
    assert str(caught.value) == (
        "licence BOUND is for installation 1111-aaaa; this installation is 2222-bbbb "
        "(netdistill licence install-id)"
    )


def test_not_a_licence(vendor: TestVendor) -> None:
    with pytest.raises(LicenceError, match="not a netdistill licence"):
        check(vendor, "hello")
    text = vendor.issue("X", now=NOW)
    with pytest.raises(LicenceError, match="the signature is not base64"):
        check(vendor, text.replace("signature: ", "signature: !!"))
    with pytest.raises(LicenceError, match="needs 'key:' and 'signature:'"):
        check(vendor, text.replace(f"key: {TEST_KEY_ID}", "kid: x"))


def test_limits_add_up_and_never_fall_below_the_community_edition(vendor: TestVendor) -> None:
    assert combined([]) == COMMUNITY
    assert COMMUNITY.gatherers == 2 and COMMUNITY.exporter_limit("netflow") == 25
    assert "scale-out" not in COMMUNITY.features
    a = check(vendor, vendor.issue("A", now=NOW, gatherers=1, exporters={"netflow": 100}))
    b = check(vendor, vendor.issue(
        "B", now=NOW, gatherers=4, exporters={"netflow": 50, "*": 40}, features=("scale-out",)
    ))  # fmt: skip
    both = combined([a, b])
    assert both.gatherers == 5
    assert both.exporter_limit("netflow") == 150
    assert both.exporter_limit("radius") == 40  # b's "*"
    assert both.exporter_limit("syslog") == 40
    assert both.features == ("merge", "rating", "scale-out")
    small = combined([a])
    assert small.gatherers == 2  # 1 < the community edition's 2
    assert small.exporter_limit("radius") == 25
