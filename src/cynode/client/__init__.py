"""The client side of the user API: a typed gateway client, a credentials store and the CLI commands.

``api`` speaks HTTP to the gateway, ``credentials`` keeps the signed-in session on disk, ``commands``
turns both into ``cynode login|logout|whoami|task ...``.
"""
