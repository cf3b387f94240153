"""Where the change listener connects: LISTEN needs a session, never a transaction pooler."""

import pytest

from tasks_api.database_url import listen_url

NEON = "ep-cool-darkness-123456{}.us-east-2.aws.neon.tech"
QUERY = "/neondb?sslmode=require&channel_binding=require"


class TestListenUrl:
    def test_the_direct_url_wins(self) -> None:
        url = f"postgresql://u:p@{NEON.format('-pooler')}{QUERY}"
        assert listen_url(url, "postgresql://u:p@direct/db") == ("postgresql://u:p@direct/db", None)

    def test_a_neon_pooler_host_becomes_its_direct_host(self) -> None:
        url = f"postgresql://u:p@{NEON.format('-pooler')}{QUERY}"
        assert listen_url(url, None) == (f"postgresql://u:p@{NEON.format('')}{QUERY}", None)

    def test_a_neon_direct_host_is_kept(self) -> None:
        url = f"postgres://u:p@{NEON.format('')}:5432{QUERY}"
        assert listen_url(url, None) == (url, None)

    @pytest.mark.parametrize(
        "url", ["postgresql://u:p@localhost/db", "postgresql://u@/db?host=/run/postgresql"]
    )
    def test_a_plain_url_is_used_as_it_is(self, url: str) -> None:
        assert listen_url(url, None) == (url, None)

    def test_pgbouncer_without_a_direct_url_warns(self) -> None:
        url = "postgresql://u:p@localhost:6432/db?pgbouncer=true"
        used, warning = listen_url(url, None)
        assert used == url
        assert warning is not None
        assert "DATABASE_DIRECT_URL" in warning
        assert "p@" not in warning  # never the password
