"""Local users, sessions and tokens: login, refresh, logout, admin user management."""
