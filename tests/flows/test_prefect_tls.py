"""Prefect's API clients share one verified TLS context per CA file (headwater.common.prefect_tls).

Against a real HTTPS server whose certificate a throw-away CA signed: clients built one after the other
verify it with the same context; another CA file (the wrong root) gets its own context and fails, and a
rewritten CA file is read again. Prefect's insecure mode keeps its own unverified context.
"""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import threading

import pytest
from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

from headwater.common.prefect_tls import share_api_tls_contexts
from tests import tls_servers


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(True).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> tls_servers.TestCertificates:
    return tls_servers.TestCertificates.make(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def https_api(certificates) -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_address[1]}/api"
    server.shutdown()


def _context(client) -> ssl.SSLContext:
    return client._client._transport._pool._ssl_context


def test_clients_share_the_verified_context_of_their_ca_file(certificates, https_api, tmp_path):
    share_api_tls_contexts()
    share_api_tls_contexts()  # a second call changes nothing
    ca_file = tmp_path / "ca.crt"
    shutil.copy(certificates.root_cert, ca_file)

    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(ca_file)}):
        first, second = SyncPrefectClient(https_api), SyncPrefectClient(https_api)
        asynchronous = PrefectClient(https_api)
        assert _context(first) is _context(second) is _context(asynchronous)
        assert _context(first).verify_mode == ssl.CERT_REQUIRED and _context(first).check_hostname
        with first, second:
            assert first.api_healthcheck() is None and second.api_healthcheck() is None  # None: healthy

        # The file rewritten with another CA: read again, and the server's certificate no longer verifies.
        shutil.copy(certificates.other_root_cert, ca_file)
        stranger = SyncPrefectClient(https_api)
        assert _context(stranger) is not _context(first)
        with stranger:
            failure = stranger.api_healthcheck()
        assert isinstance(failure, Exception) and "CERTIFICATE_VERIFY_FAILED" in repr(failure.__context__ or failure)

    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(certificates.other_root_cert)}):
        wrong_root = SyncPrefectClient(https_api)
        assert _context(wrong_root) is not _context(first)


def test_the_insecure_mode_keeps_its_own_unverified_context(certificates, https_api):
    share_api_tls_contexts(preload_default=True)
    with temporary_settings(updates={PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        insecure, other = SyncPrefectClient(https_api), SyncPrefectClient(https_api)
        assert _context(insecure) is not _context(other)
        assert _context(insecure).verify_mode == ssl.CERT_NONE
        with insecure:
            assert insecure.api_healthcheck() is None  # the throw-away CA's certificate, not verified
    verified = SyncPrefectClient(https_api)  # certifi's bundle: the throw-away CA is not in it
    assert _context(verified).verify_mode == ssl.CERT_REQUIRED
    with verified:
        assert isinstance(verified.api_healthcheck(), Exception)
