"""Admin UI sessions without a browser: lifetime, the cap, CSRF comparison."""

from certgate.ui.sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_when_its_lifetime_is_over():
    clock = Clock()
    sessions = Sessions(lifetime=60.0, max_sessions=4, clock=clock)
    session = sessions.create()
    clock.now += 59.0
    assert sessions.get(session.id) == session
    clock.now += 1.0
    assert sessions.get(session.id) is None


def test_signing_in_beyond_the_cap_ends_the_oldest_session():
    sessions = Sessions(lifetime=60.0, max_sessions=2, clock=Clock())
    first, second, third = sessions.create(), sessions.create(), sessions.create()
    assert sessions.get(first.id) is None
    assert sessions.get(second.id) == second and sessions.get(third.id) == third


def test_csrf_token_must_match_exactly():
    session = Sessions(lifetime=60.0, max_sessions=2).create()
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(session.csrf[:-1])
    assert session.id != session.csrf
