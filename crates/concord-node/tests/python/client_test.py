#!/usr/bin/env python3
"""A Concord client generated from proto/concord.proto by another toolchain.

Usage: client_test.py ADDR   (e.g. 127.0.0.1:7101 or http://127.0.0.1:7101)

Generates Python stubs with grpcio-tools into a temporary directory, then
talks to the node at ADDR: Put, Get (an LWW value), Increment and Get (a
counter), and one error case (Increment on an LWW collection is
INVALID_ARGUMENT). The node must have an lww-hlc collection "hlc" and a
counter collection "stock". Prints "ok <check>" for each check that passes;
exits 0 only if all do. Needs: pip install grpcio grpcio-tools.
"""

import os
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
# crates/concord-node/tests/python -> the repository root.
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "proto"))


def generate(out):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            PROTO_DIR,
            "--python_out=" + out,
            "--grpc_python_out=" + out,
            os.path.join(PROTO_DIR, "concord.proto"),
        ],
        check=True,
    )
    sys.path.insert(0, out)
    print("ok generate: stubs from " + os.path.join(PROTO_DIR, "concord.proto"))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    addr = sys.argv[1]
    for scheme in ("http://", "https://"):
        if addr.startswith(scheme):
            addr = addr[len(scheme):]

    import grpc

    with tempfile.TemporaryDirectory() as out:
        generate(out)
        import concord_pb2 as pb
        import concord_pb2_grpc as rpc

        run = uuid.uuid4().hex.encode()
        with grpc.insecure_channel(addr) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = rpc.ConcordStub(channel)
            local = pb.WriteConcern(level=pb.WriteConcern.LEVEL_LOCAL)

            # Put, then Get with the causal token.
            key = b"py-" + run
            r = stub.Put(
                pb.PutRequest(collection="hlc", key=key, value=b"from python", concern=local),
                timeout=30,
            )
            assert r.token.seq > 0, r
            assert len(r.durable_in) >= 1, r
            print("ok put: token %d#%d, durable in %s" % (r.token.origin, r.token.seq, list(r.durable_in)))

            g = stub.Get(pb.GetRequest(collection="hlc", key=key, after=r.token), timeout=30)
            assert g.WhichOneof("result") == "value", g
            assert g.value.value == b"from python", g
            assert g.value.write.seq == r.token.seq, g
            print("ok get: %r written in %s" % (g.value.value, g.value.origin))

            g = stub.Get(pb.GetRequest(collection="hlc", key=b"never-" + run), timeout=30)
            assert g.WhichOneof("result") == "missing", g
            print("ok get-missing")

            # Increment (positive and negative), then Get the counter.
            ckey = b"py-counter-" + run
            for delta in (5, 7, -2):
                r = stub.Increment(
                    pb.IncrementRequest(collection="stock", key=ckey, delta=delta, concern=local),
                    timeout=30,
                )
                assert r.token.seq > 0, r
            g = stub.Get(pb.GetRequest(collection="stock", key=ckey, after=r.token), timeout=30)
            assert g.WhichOneof("result") == "counter", g
            assert g.counter == 10, g
            print("ok increment: counter is %d" % g.counter)

            # An increment on an LWW collection: INVALID_ARGUMENT.
            try:
                stub.Increment(
                    pb.IncrementRequest(collection="hlc", key=key, delta=1), timeout=30
                )
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
                print("ok invalid-argument: %s" % e.details())
            else:
                raise AssertionError("increment on an lww collection was accepted")

            # The node kept serving.
            s = stub.Status(pb.StatusRequest(), timeout=30)
            assert s.local_writes >= 4, s
            print("ok status: region %s" % s.region)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
