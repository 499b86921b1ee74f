"""Run the test OpenID provider: `python -m tests.oidc_provider.serve` with PROVIDER_RSA_KEY
and PROVIDER_DATABASE set. It listens on an ephemeral loopback port and prints
`listening on PORT` once it serves."""

import os
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    server = make_server("127.0.0.1", 0, None, ThreadedServer, QuietHandler)
    port = server.server_address[1]
    os.environ["PROVIDER_ISSUER"] = f"http://127.0.0.1:{port}/o"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", verbosity=0)
    server.set_app(get_wsgi_application())
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
