"""The demo web app's server: the app's own backend in front of which the gateway sits.

It plays the parts a real app keeps to itself: it knows who belongs to which tenant
(`directory`), mints their tokens with JWT_SECRET (`sessions`; the gateway only verifies them),
takes writes into PostgreSQL (`writes`: Electric is the read path), and publishes revocations
through the gateway's admin API with GATEWAY_ADMIN_TOKEN (`admin`), which the page never holds.
It serves the page twice (`app`): on one origin where the page calls the gateway on another
origin with a bearer token (CORS), and on one where `/as/USER/v1/*` is reverse-proxied to the
gateway (`proxy`), so the page and the gateway share an origin and an HttpOnly cookie carries
the token.
"""
