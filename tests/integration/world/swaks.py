"""swaks as a client."""
import subprocess


def swaks(server, port, to, from_="sender@client.test", body=None, extra_args=(),
          helo="client.test", timeout=60):
    """Run swaks; return (exit code, transcript text)."""
    argv = ["swaks", "--server", server, "--port", str(port), "--to", to,
            "--from", from_, "--helo", helo, "--timeout", "15"]
    if body is not None:
        argv += ["--body", body]
    argv += list(extra_args)
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")
