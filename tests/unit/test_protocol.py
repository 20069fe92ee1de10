"""protocol: every malformed request is a ProtocolError with a code, never a crash (SPEC §8)."""
import pytest

from ignity import protocol


@pytest.mark.parametrize("line", [
    b"", b"\x00\xff\xfe garbage", b"{not json", b"[" * 100000, b'{"cmd": 42}', b"[1, 2]", b'{"cmd": "svc"}',
    b'{"cmd": "svc", "action": "up"}', b'{"cmd": "svc", "action": "fly", "names": ["a"]}',
    b'{"cmd": "svc", "action": "signal", "names": ["a"]}', b'{"cmd": "wait", "until": "x", "names": ["a"]}',
    b'{"cmd": "wait", "until": "u", "names": ["a"], "timeout_ms": -1}', b'{"cmd": "halt", "exit_code": 300}',
    b'{"cmd": "status", "names": "a"}', b'{"v": 99, "cmd": "status"}',
])
def test_malformed_requests(line):
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.decode_request(line)
    assert e.value.code == 2 and str(e.value)


def test_valid_requests_round_trip():
    for message in ({"cmd": "status", "names": []}, {"cmd": "svc", "action": "up", "names": ["a"]},
                    {"cmd": "wait", "until": "U", "timeout_ms": 5, "names": ["a"]},
                    {"cmd": "halt", "exit_code": 5}, {"cmd": "rescan"}):
        line = protocol.encode({"v": protocol.VERSION, **message})
        assert line.endswith(b"\n")
        assert protocol.decode_request(line.strip())["cmd"] == message["cmd"]
