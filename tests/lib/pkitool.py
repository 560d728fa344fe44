"""Certificates made with the openssl command line for the TLS tests.

A CaDir is a small `openssl ca` working directory around any CA key and
certificate: vigil's own (<data-dir>/pki/ca.crt and ca.key), a foreign CA
made by a test, or the CA that replaces vigil's when the reference broker
runs. It signs requests with chosen validity dates and extensions,
revokes certificates and writes CRLs. Only the standard library and
/usr/bin/openssl are used.
"""

import os
import subprocess

OPENSSL = "/usr/bin/openssl"
URI_PREFIX = "urn:vigil:device:"


class PkiError(Exception):
    """An openssl command failed."""


def openssl(*args, cwd=None, log=None, input_text=None):
    """Run openssl with args; return its stdout; raise PkiError on failure."""
    cmd = [OPENSSL] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=60,
                         input=input_text)
    if log is not None:
        log("openssl:", " ".join(cmd), "->", out.returncode, out.stderr.strip()[-400:])
    if out.returncode != 0:
        raise PkiError(f"'{' '.join(cmd)}' failed with status {out.returncode}: "
                       f"{out.stderr.strip()}")
    return out.stdout


def ec_key(path, curve="P-256"):
    """Write a new unencrypted EC private key in PEM to path."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}",
            "-out", path)
    os.chmod(path, 0o600)
    return path


def csr(key, subject, path):
    """Write a certificate signing request for key with subject (e.g. /CN=bed-1)."""
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", path)
    return path


def self_signed_ca(directory, name):
    """Make a CA key and a self-signed CA certificate; return a CaDir for it."""
    os.makedirs(directory, exist_ok=True)
    key = ec_key(os.path.join(directory, "ca.key"))
    crt = os.path.join(directory, "ca.crt")
    openssl("req", "-x509", "-new", "-key", key, "-subj", f"/CN={name}", "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash", "-out", crt)
    return CaDir(os.path.join(directory, "ca-work"), crt, key)


def device_extensions(device_id, uri=True):
    """Extensions of a device certificate as vigil issues them."""
    ext = ["basicConstraints=critical,CA:FALSE",
           "keyUsage=critical,digitalSignature",
           "extendedKeyUsage=clientAuth"]
    if uri:
        ext.append(f"subjectAltName=URI:{URI_PREFIX}{device_id}")
    return ext


def server_extensions():
    """Extensions of a server certificate valid for localhost and loopback."""
    return ["basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=serverAuth",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"]


class CaDir:
    """An `openssl ca` database around one CA certificate and key."""

    def __init__(self, directory, ca_crt, ca_key):
        self.dir = directory
        self.ca_crt = ca_crt
        self.ca_key = ca_key
        os.makedirs(os.path.join(directory, "new"), exist_ok=True)
        self.index = os.path.join(directory, "index.txt")
        if not os.path.exists(self.index):
            open(self.index, "w").close()
            with open(os.path.join(directory, "index.txt.attr"), "w") as f:
                # The same subject may hold several certificates (rotation).
                f.write("unique_subject = no\n")
        serial = os.path.join(directory, "serial")
        if not os.path.exists(serial):
            with open(serial, "w") as f:
                f.write(os.urandom(8).hex().upper() + "\n")
        crlnumber = os.path.join(directory, "crlnumber")
        if not os.path.exists(crlnumber):
            with open(crlnumber, "w") as f:
                f.write("01\n")
        self.n = 0

    def _config(self, extensions):
        path = os.path.join(self.dir, f"openssl-{self.n}.cnf")
        self.n += 1
        lines = [
            "[ca]", "default_ca = local",
            "[local]",
            f"dir = {self.dir}",
            "database = $dir/index.txt",
            "new_certs_dir = $dir/new",
            "serial = $dir/serial",
            "crlnumber = $dir/crlnumber",
            f"certificate = {self.ca_crt}",
            f"private_key = {self.ca_key}",
            "default_md = sha256",
            "default_days = 365",
            "default_crl_days = 30",
            "policy = any",
            "copy_extensions = none",
            "unique_subject = no",
            "x509_extensions = ext",
            "[any]", "commonName = supplied",
            "[ext]",
        ] + [line.replace("=", " = ", 1) for line in extensions]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def sign(self, request, out, extensions, days=365, start=None, end=None, log=None):
        """Sign the CSR at request into out; start/end are YYMMDDHHMMSSZ strings."""
        cfg = self._config(extensions)
        args = ["ca", "-batch", "-config", cfg, "-in", request, "-out", out, "-notext"]
        if start is not None:
            args += ["-startdate", start]
        if end is not None:
            args += ["-enddate", end]
        else:
            args += ["-days", str(days)]
        openssl(*args, log=log)
        return out

    def issue(self, directory, name, subject, extensions, **kwargs):
        """Make a key and a signed certificate; return (cert path, key path)."""
        key = ec_key(os.path.join(directory, f"{name}.key"))
        req = csr(key, subject, os.path.join(directory, f"{name}.csr"))
        crt = self.sign(req, os.path.join(directory, f"{name}.crt"), extensions, **kwargs)
        return crt, key

    def revoke(self, cert, log=None):
        openssl("ca", "-config", self._config([]), "-revoke", cert, log=log)

    def write_crl(self, out, log=None):
        """Write the CRL of every revoked certificate to out (PEM)."""
        tmp = out + ".tmp"
        openssl("ca", "-config", self._config([]), "-gencrl", "-out", tmp, log=log)
        # Replaced in one step so that a broker polling the file never reads half of it.
        os.replace(tmp, out)
        return out


def cert_field(cert, *options):
    """Return openssl x509 output for one certificate, e.g. cert_field(p, "-subject")."""
    return openssl("x509", "-in", cert, "-noout", *options).strip()


def serial_of(cert):
    """Return the serial number of a PEM certificate as upper-case hex."""
    text = cert_field(cert, "-serial")
    return text.split("=", 1)[1].strip().upper()
