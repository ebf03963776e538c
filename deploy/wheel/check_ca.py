"""Does the installed orchard's S3 client verify TLS with the CA certificates this system has,
or those the environment names? An HTTPS server on 127.0.0.1 (certificate for localhost,
signed by CA_DIR/ca.pem) answers every GET with a one-object S3 listing; orchard.Storage
lists s3://bucket/prefix through it. deploy/test-wheel runs it in the bullseye chroot with
the CA files moved around (Debian's bundle removed; Red Hat's and Amazon Linux's layouts;
AWS_CA_BUNDLE, SSL_CERT_FILE).

    check_ca.py CA_DIR EXPECT [NAME=VALUE...]

EXPECT: ok (the listing succeeds), tls-error (it fails on the certificate) or error:TEXT (it
fails with a message containing TEXT). AWS_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR and
CURL_CA_BUNDLE are cleared, then the NAME=VALUE pairs set. Exit status 0 when the outcome is
the expected one.
"""

from __future__ import annotations

import http.server
import os
import ssl
import sys
import threading

LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name>
<Prefix>prefix/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>prefix/a.jpg</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>
<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"""


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(LISTING)))
        self.end_headers()
        self.wfile.write(LISTING)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    ca_dir, expect = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(ca_dir, "server.pem"), os.path.join(ca_dir, "server.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
                      AWS_REGION="us-east-1")
    for name in ("AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    for pair in sys.argv[3:]:
        name, value = pair.split("=", 1)
        os.environ[name] = value

    import orchard

    endpoint = f"https://localhost:{server.server_address[1]}"
    try:
        listed = orchard.Storage("s3://bucket/prefix", s3_endpoint=endpoint).list()
        outcome, detail = "ok", f"listed {listed}"
    except Exception as e:  # noqa: BLE001 (any failure is an outcome to report)
        outcome, detail = "error", f"{type(e).__name__}: {e}"
    finally:
        server.shutdown()
    print(f"  {' '.join(sys.argv[3:]) or 'no CA variable'}: {outcome}: {detail}")
    if expect == "ok":
        return 0 if outcome == "ok" else 1
    if expect == "tls-error":
        tls = any(w in detail.lower() for w in ("certificate", "ssl", "tls"))
        return 0 if outcome == "error" and tls else 1
    if expect.startswith("error:"):
        return 0 if outcome == "error" and expect[len("error:"):] in detail else 1
    sys.exit(f"check_ca.py: unknown expectation {expect}")


if __name__ == "__main__":
    sys.exit(main())
