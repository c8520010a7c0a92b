"""gatewayctl: the gateway's command line for operators and teams, over its HTTP API.

    python -m gatewayctl [--url URL] [--key KEY] COMMAND ...

It lives apart from `shared/` (it drives the gateway, it is not part of it) and uses
only the standard library, so it runs from any checkout or virtualenv.
"""
