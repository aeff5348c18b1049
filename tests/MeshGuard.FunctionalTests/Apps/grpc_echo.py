#!/usr/bin/python3
"""meshtest.Echo with Debian's python3-grpcio, as the server behind a sidecar or as a client through one.

No generated code: the two messages have only scalar fields, encoded here by hand.

  grpc_echo.py serve                 prints "listening PORT" once bound to 127.0.0.1
  grpc_echo.py call TARGET AUTHORITY runs one call of each kind, prints one JSON object per call
"""
import json
import sys
import time
from concurrent import futures

import grpc

SERVICE = "meshtest.Echo"


def varint(value):
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data, i):
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def encode(fields):
    """fields: {number: str or int}"""
    out = bytearray()
    for number, value in sorted(fields.items()):
        if isinstance(value, str):
            raw = value.encode()
            out += varint(number << 3 | 2) + varint(len(raw)) + raw
        elif value:
            out += varint(number << 3) + varint(value)
    return bytes(out)


def decode(data):
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, i = read_varint(data, i)
            fields[number] = data[i:i + length].decode()
            i += length
        elif wire == 0:
            fields[number], i = read_varint(data, i)
        else:
            raise ValueError(f"wire type {wire}")
    return fields


def reply(text):
    return encode({1: text})


def request(text="", count=0, delay_ms=0, status=0):
    return encode({1: text, 2: count, 3: delay_ms, 4: status})


def caller(context):
    for key, value in context.invocation_metadata():
        if key == "x-forwarded-client-cert":
            return value
    return ""


def unary(data, context):
    req = decode(data)
    remaining = context.time_remaining()
    context.set_trailing_metadata((
        ("x-served-by", "python"),
        ("x-caller", caller(context)),
        ("x-deadline-ms", str(int(remaining * 1000)) if remaining is not None and remaining < 1e6 else "none"),
    ))
    if req.get(3):
        time.sleep(req[3] / 1000)
    if req.get(4):
        context.abort(grpc.StatusCode(next(c.value for c in grpc.StatusCode if c.value[0] == req[4])), f"asked for status {req[4]}")
    return reply("py:" + req.get(1, ""))


def server_stream(data, context):
    req = decode(data)
    for i in range(req.get(2, 0)):
        yield reply(f"py:{req.get(1, '')}:{i}")


def client_stream(requests, context):
    return reply("py:" + "+".join(decode(r).get(1, "") for r in requests))


def bidi(requests, context):
    for r in requests:
        yield reply("py:" + decode(r).get(1, ""))


def admin(data, context):
    # The tests read this line to prove a denied call never reached the server.
    print("served Admin", flush=True)
    return reply("py:admin")


def serve():
    same = dict(request_deserializer=None, response_serializer=None)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, **same),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, **same),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, **same),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **same),
        "Admin": grpc.unary_unary_rpc_method_handler(admin, **same),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


def outcome(name, call):
    try:
        value, trailers = call()
        return {"call": name, "code": "OK", "reply": value, "trailers": trailers}
    except grpc.RpcError as e:
        return {"call": name, "code": e.code().name, "details": e.details(),
                "trailers": dict(e.trailing_metadata() or ())}


def call(target, authority):
    channel = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
    method = lambda kind, name: getattr(channel, kind)(f"/{SERVICE}/{name}")

    def unary_call():
        value, c = method("unary_unary", "Unary").with_call(request("hello"), timeout=10)
        return decode(value).get(1), dict(c.trailing_metadata())

    def server_stream_call():
        stream = method("unary_stream", "ServerStream")(request("s", count=3), timeout=10)
        return [decode(r).get(1) for r in stream], dict(stream.trailing_metadata())

    def client_stream_call():
        value, c = method("stream_unary", "ClientStream").with_call(iter([request("a"), request("b"), request("c")]), timeout=10)
        return decode(value).get(1), dict(c.trailing_metadata())

    def bidi_call():
        stream = method("stream_stream", "Bidi")(iter([request("x"), request("y")]), timeout=10)
        return [decode(r).get(1) for r in stream], dict(stream.trailing_metadata())

    def status_call():
        value, c = method("unary_unary", "Unary").with_call(request("fail", status=5), timeout=10)
        return decode(value).get(1), dict(c.trailing_metadata())

    def admin_call():
        value, c = method("unary_unary", "Admin").with_call(request("root"), timeout=10)
        return decode(value).get(1), dict(c.trailing_metadata())

    for name, fn in (("unary", unary_call), ("server_stream", server_stream_call), ("client_stream", client_stream_call),
                     ("bidi", bidi_call), ("status", status_call), ("admin", admin_call)):
        print(json.dumps(outcome(name, fn)), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2], sys.argv[3])
