"""Which manifest digest a pull reports, from what podman lists for the pulled image."""

from __future__ import annotations

from cynode.sandbox.images import Registry, _pulled_digest

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_a_reference_pinned_by_digest_reports_its_pin() -> None:
    assert _pulled_digest(f"r:5000/app@{A}", [f"r:5000/app@{B}"]) == A


def test_the_one_digest_listed_for_the_pulled_repository_is_reported() -> None:
    assert _pulled_digest("r:5000/app:1", [f"r:5000/app@{A}", f"localhost/other@{B}"]) == A


def test_an_image_stored_under_several_manifests_claims_no_digest() -> None:
    # podman lists every digest of the stored image under each of its names: which was pulled is unknown
    assert _pulled_digest("r:5000/app:1", [f"r:5000/app@{A}", f"r:5000/app@{B}"]) is None
    assert _pulled_digest("r:5000/app:1", []) is None


def test_a_registry_url_with_a_login_in_it_is_shown_without_it() -> None:
    assert Registry("https://user:secret@registry.example:5000").shown == "registry.example:5000"
    assert Registry("http://127.0.0.1:5000").shown == "127.0.0.1:5000"
