"""What the diagnostics loaded as `sitecustomize` in the benchmark's web servers share
(bench/hop_watch, bench/turn_watch): telling a server from the benchmark's other processes,
and installing a diagnostic once Django is set up in it. They put their checkout on the path
to import this, since the servers of `--site` run from another folder."""


def is_server() -> bool:
    command = open("/proc/self/cmdline", "rb").read().replace(b"\0", b" ").decode()
    return ("daphne" in command or "uvicorn" in command) and "simulator" not in command


def after_django_setup(install) -> None:
    """Call `install()` right after `django.setup()`, when the site's modules can be imported."""
    import django

    setup = django.setup

    def setup_then_install(*args, **kwargs):
        setup(*args, **kwargs)
        install()

    django.setup = setup_then_install
