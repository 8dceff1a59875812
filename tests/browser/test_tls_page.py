#!/usr/bin/env python3
"""The demo page over https in headless Chromium (issue 14): make a test CA and a server
certificate (openssl), start roomd with wss_port, run tls_page.mjs. run.sh installs what
this needs first.
"""

import base64
import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from harness import ADMIN_KEY, Server, free_port  # noqa: E402
from tls_harness import TestCA  # noqa: E402

RUN_TIMEOUT = 120


def spki_hash(cert_file):
    """base64 SHA-256 of the certificate's public key (what Chromium's SPKI list takes)."""
    der = subprocess.run(["openssl", "x509", "-in", cert_file, "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def main():
    ca = TestCA()
    cert = ca.cert("server")
    wss_port = free_port()
    server = Server(wss_port=wss_port, tls_cert_file=cert[0], tls_key_file=cert[1])
    rc = 1
    try:
        env = dict(os.environ, ROOMD_WSS_PORT=str(wss_port), ROOMD_TCP_PORT=str(server.port),
                   ROOMD_ADMIN_PORT=str(server.admin_port), ROOMD_ADMIN_KEY=ADMIN_KEY,
                   ROOMD_SPKI=spki_hash(cert[0]))
        rc = subprocess.run(["node", os.path.join(HERE, "tls_page.mjs")], env=env, cwd=HERE,
                            timeout=RUN_TIMEOUT).returncode
        if rc != 0:
            print("FAIL: tls_page.mjs exited with %d; roomd log:\n%s" % (rc, server.log_text()))
    finally:
        server.stop()
        ca.remove()
    return 1 if rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
