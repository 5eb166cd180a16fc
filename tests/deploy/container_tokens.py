"""Keys and tokens for the container test: a JWKS file to mount, and tokens signed with it.

Usage: python container_tokens.py DIR ISSUER AUDIENCE
Writes DIR/jwks.json (public) and DIR/metrics-token, and prints two lines: an access token with
`system/*.cruds` and one with only `user/Questionnaire.rs`.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def main(directory: str, issuer: str, audience: str) -> None:
    out = Path(directory)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update(kid="container-test", alg="RS256", use="sig")
    (out / "jwks.json").write_text(json.dumps({"keys": [public]}))
    (out / "metrics-token").write_text(secrets.token_urlsafe(32) + "\n")
    now = int(time.time())
    for scope in ("system/*.cruds", "user/Questionnaire.rs"):
        claims = {"iss": issuer, "aud": audience, "sub": "container-test", "iat": now,
                  "exp": now + 3600, "scope": scope}
        print(jwt.encode(claims, key, algorithm="RS256", headers={"kid": "container-test"}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
