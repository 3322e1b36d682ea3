"""A real SMTP server for dsmon's notification tests (aiosmtpd, Debian's python3-aiosmtpd).

Three listeners on loopback, on free ports written to --ports as JSON once they listen:
  starttls  offers STARTTLS (the given certificate) and, after it, AUTH PLAIN/LOGIN
  plain     no TLS and no AUTH (to see `starttls = "required"` refused)
  implicit  TLS from the first byte (smtps://), AUTH PLAIN/LOGIN

Every message received is written to --out as NNNN.json: the listener, envelope, whether the
connection was TLS and whether it got there by STARTTLS, the AUTH user and mechanism, and the
parsed message (subject, content type, the text/plain and text/html parts).

usage: smtp_server.py --out DIR --ports FILE --cert PEM --key PEM --user U --password P
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    for a in ("--out", "--ports", "--cert", "--key", "--user", "--password"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    counter = itertools.count(1)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        if not ok:
            return AuthResult(success=False, handled=False)
        session.dsmon_mechanism = mechanism
        return AuthResult(success=True, auth_data=auth_data)

    def text(part):
        return None if part is None else part.get_content().replace("\r\n", "\n")

    class Recorder:
        def __init__(self, listener):
            self.listener = listener

        async def handle_DATA(self, server, session, envelope):
            raw = envelope.original_content or envelope.content
            if isinstance(raw, str):
                raw = raw.encode()
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            plain = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
            transport = server.transport
            auth = session.auth_data if session.authenticated else None
            record = {
                "listener": self.listener,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": transport is not None
                and transport.get_extra_info("ssl_object") is not None,
                "starttls": session.ssl is not None,
                "auth_user": auth.login.decode() if isinstance(auth, LoginPassword) else None,
                "auth_mechanism": getattr(session, "dsmon_mechanism", None),
                "subject": str(msg["subject"]),
                "content_type": msg.get_content_type(),
                # Line ends as LF: SMTP carries CRLF.
                "plain": text(plain),
                "html": text(html),
            }
            path = os.path.join(args.out, "%04d.json" % next(counter))
            with open(path + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(path + ".tmp", path)
            return "250 2.0.0 OK recorded"

    def factory(listener, tls_context=None, auth=False, auth_require_tls=True):
        return lambda: SMTP(
            Recorder(listener),
            hostname="dsmon-test-smtp",
            tls_context=tls_context,
            authenticator=authenticator if auth else None,
            auth_require_tls=auth_require_tls,
            timeout=30,
        )

    async def serve():
        servers = {
            "starttls": await loop.create_server(
                factory("starttls", tls_context=ctx, auth=True), "127.0.0.1", 0
            ),
            "plain": await loop.create_server(factory("plain"), "127.0.0.1", 0),
            # auth_require_tls counts STARTTLS only: over implicit TLS it would refuse AUTH.
            "implicit": await loop.create_server(
                factory("implicit", auth=True, auth_require_tls=False),
                "127.0.0.1",
                0,
                ssl=ctx,
            ),
        }
        ports = {k: s.sockets[0].getsockname()[1] for k, s in servers.items()}
        with open(args.ports + ".tmp", "w") as f:
            json.dump(ports, f)
        os.rename(args.ports + ".tmp", args.ports)
        print("listening", ports, file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve())


if __name__ == "__main__":
    main()
