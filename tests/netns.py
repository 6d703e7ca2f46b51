"""A test host in a network namespace the test creates, linked to this machine by a veth pair.

Its link can be taken down and up again: a real network cut between clients here and a server there.
Needs root and iproute2; ``NetnsHost.available()`` says whether this machine allows it.
"""

from __future__ import annotations

import os
import random
import subprocess


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetnsHost:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.name, self.host_if, self.ns_if = f"ap{tag}", f"aph{tag}", f"apn{tag}"
        octet = random.randrange(1, 250)
        self.host_ip, self.address = f"10.231.{octet}.1", f"10.231.{octet}.2"

    @staticmethod
    def available() -> bool:
        if os.geteuid() != 0:
            return False
        probe = NetnsHost()
        try:
            probe.start()
        except (OSError, subprocess.CalledProcessError):
            return False
        finally:
            probe.stop()
        return True

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def start(self) -> NetnsHost:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        for args in (
            ("addr", "add", f"{self.address}/30", "dev", self.ns_if),
            ("link", "set", self.ns_if, "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip("netns", "exec", self.name, "ip", *args)
        return self

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def stop(self) -> None:
        _ip("link", "del", self.host_if, check=False)
        _ip("netns", "del", self.name, check=False)
