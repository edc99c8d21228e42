#!/usr/bin/python3
"""dkimpy (Debian python3-dkim) on the messages and keys auth_bench made.

    auth_dkimpy.py DIR SECONDS

Signs DIR/msg-{4k,64k}.eml with DIR/rsa.pem and DIR/ed25519.seed,
relaxed/relaxed, the same h= list as our signer used (read from
DIR/signed-*.eml), and verifies DIR/signed-*.eml (our signatures) with the
key record handed over from memory (no DNS). Prints lines in auth_bench's
format: "dkimpy sign rsa 4k msgs N secs S rate BEST mean MEAN bytes_per_s B"
(rate = the best of 5 rounds, as auth_bench reports).
"""
import re
import sys
import time

import dkim


def rate_loop(fn, secs, rounds=5):
    """As auth_bench: best of `rounds` rounds of secs/rounds each."""
    total, alltime, best = 0, 0.0, 0.0
    for _ in range(rounds):
        n = 0
        t0 = time.perf_counter()
        while True:
            fn()
            n += 1
            t = time.perf_counter() - t0
            if t >= secs / rounds:
                break
        best = max(best, n / t)
        total += n
        alltime += t
    return total, alltime, best


def main():
    d, secs = sys.argv[1], float(sys.argv[2])
    keys = {
        "rsa": (b"rsa-sha256", open(d + "/rsa.pem", "rb").read()),
        "ed25519": (b"ed25519-sha256", open(d + "/ed25519.seed", "rb").read().strip()),
    }
    txt = {a: open("%s/%s.txt" % (d, a), "rb").read().strip() for a in keys}
    for alg, (algname, priv) in keys.items():
        for size in ("4k", "64k"):
            msg = open("%s/msg-%s.eml" % (d, size), "rb").read()
            signed = open("%s/signed-%s-%s.eml" % (d, alg, size), "rb").read()
            hdr = signed.split(b"\r\n\r\n", 1)[0]
            h = re.search(rb"[; \t]h=([^;]*);", hdr).group(1)
            inc = [x.strip().lower() for x in re.sub(rb"\s", b"", h).split(b":")]

            def sign():
                return dkim.sign(msg, alg.encode(), b"bench.test", priv,
                                 signature_algorithm=algname,
                                 canonicalize=(b"relaxed", b"relaxed"),
                                 include_headers=inc)

            def dnsfunc(name, timeout=5):
                return txt[alg]

            def verify():
                return dkim.verify(signed, dnsfunc=dnsfunc)

            # both must work before they are timed; dkimpy's own signature
            # must verify too (interop on the same message)
            own = sign()
            if not verify() or not dkim.verify(own + msg, dnsfunc=dnsfunc):
                sys.exit("dkimpy: verification failed for %s %s" % (alg, size))
            n, t, best = rate_loop(sign, secs)
            print("dkimpy sign %s %s msgs %d secs %.3f rate %.1f mean %.1f bytes_per_s %.0f"
                  % (alg, size, n, t, best, n / t, best * len(msg)))
            n, t, best = rate_loop(verify, secs)
            print("dkimpy verify %s %s msgs %d secs %.3f rate %.1f mean %.1f bytes_per_s %.0f"
                  % (alg, size, n, t, best, n / t, best * len(signed)), flush=True)


if __name__ == "__main__":
    main()
