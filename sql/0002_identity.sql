-- Login throttling reads recent login events per client IP and per handle from auth_audit_log
-- (the audit log is the one record of attempts, shared by every gateway process).
CREATE INDEX auth_audit_log_login_ip_idx ON auth_audit_log (ip_address, created_at)
    WHERE event_type IN ('login_success', 'login_failure');
CREATE INDEX auth_audit_log_login_handle_idx ON auth_audit_log (subject_handle, created_at)
    WHERE event_type IN ('login_success', 'login_failure');
