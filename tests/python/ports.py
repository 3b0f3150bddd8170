"""Free loopback ports for the servers tests and benchmarks start.

A port is drawn at random below Linux's ephemeral range (32768 and up) and
is never one handed out before in the run: the kernel may give a
just-closed ephemeral port again, and a client's outgoing connection could
take one between the pick and the server's bind.

Run as a script (benches/common.sh), it prints one port and keeps the
run's handed-out ports in the file named by its argument.
"""

import random
import socket
import sys


def free_port(handed_out: set[int]) -> int:
    """A port free a moment ago and not in `handed_out`, which it joins."""
    while True:
        port = random.randrange(10_000, 32_000)
        if port in handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        handed_out.add(port)
        return port


if __name__ == "__main__":
    path = sys.argv[1]
    try:
        with open(path, encoding="ascii") as f:
            given = {int(p) for p in f.read().split()}
    except FileNotFoundError:
        given = set()
    port = free_port(given)
    with open(path, "a", encoding="ascii") as f:
        f.write(f"{port}\n")
    print(port)
