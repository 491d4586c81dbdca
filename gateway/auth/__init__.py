"""Authentication and authorization: who is calling (``authenticator``) and what they may do
(``policy``). ``jwt``, ``principal``, ``apikeys`` and ``policy`` are pure; ``jwks`` and
``authenticator`` do the I/O (the aiohttp client, the dev key file)."""
