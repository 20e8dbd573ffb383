"""The admin API on the user gateway: users, nodes, system settings, provider credentials, status.

Every route is admin-only (403 for a signed-in non-admin) and every change leaves a row in
``admin_audit_log``. Secrets (provider keys) are written here, sealed with :mod:`cynode.crypto`,
and never read back out.
"""
