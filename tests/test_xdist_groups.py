"""The tests of this host's sockets and tracefs share one xdist worker (xdist_group "host", the Makefile's
--dist loadgroup): run side by side they see each other's harness processes and tracefs instances. pytest 9.2
silently broke that grouping (pytest-xdist issue 1386; pyproject.toml pins pytest below 9.2): this says so
instead of letting those tests fail at random."""

import pytest


@pytest.mark.xdist_group("host")
def test_the_host_group_is_kept_together(request):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not an xdist worker under --dist loadgroup")
    # xdist marks a grouped test by its node id's "@<group>" suffix, which its scheduler groups by
    assert request.node.nodeid.endswith("@host"), (
        f"{request.node.nodeid}: --dist loadgroup does not group here (pytest {pytest.__version__}); "
        "see pyproject.toml's pytest pin")
