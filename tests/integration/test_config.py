"""Configuration errors are reported with FILE:LINE and exit code 2."""
import subprocess

from world import todoku_bin


def _bad_config(tmp_world):
    p = tmp_world / "bad.conf"
    p.write_text("[server]\nhostname = mx.test\nno-such-key = 1\n"
                 "[listen \"smtp\"]\naddress = 127.0.0.1:2525\n")
    return p


def test_config_check_unknown_key(tmp_world):
    p = _bad_config(tmp_world)
    r = subprocess.run([todoku_bin(), "config", "check", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:3:" % p).encode() in r.stderr, r.stderr


def test_serve_refuses_bad_config(tmp_world):
    p = _bad_config(tmp_world)
    r = subprocess.run([todoku_bin(), "serve", "-f", "-c", str(p)],
                       capture_output=True, timeout=20)
    assert r.returncode == 2, r
    assert ("%s:3:" % p).encode() in r.stderr, r.stderr


def test_config_check_accepts_world_config(todoku):
    d = todoku(start=False)
    r = d.cli_run("config", "check")
    assert r.returncode == 0, r.stderr
