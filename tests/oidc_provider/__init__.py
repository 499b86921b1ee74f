"""A real OpenID provider for the single sign-on tests: django-oauth-toolkit's OIDC server as
a tiny Django project of its own, run in a second process on a loopback port (`serve.py`).

Its users, their groups (sent as the `groups` claim) and its client registrations are set by
the tests through `/test/...` endpoints that only this test project has.
"""
